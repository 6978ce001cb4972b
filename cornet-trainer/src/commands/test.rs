//! `cornet-trainer test`: features of images, as the original `run.py test`.

use crate::bars::Bars;
use crate::cli::TestArgs;
use cornet_trainer::extract::Extraction;

pub fn run(args: &TestArgs) -> anyhow::Result<()> {
    let extraction = Extraction::prepare(&args.request()?)?;
    if let Some(list) = extraction.file_list() {
        println!("{}", list.display());
    }
    println!("{}", extraction.run(&mut Bars::default())?.display());
    Ok(())
}
