//! `cornet-trainer test`: features of images, as the original `run.py test`.

use crate::cli::TestArgs;
use crate::display;
use cornet_trainer::extract::Extraction;

pub fn run(args: &TestArgs) -> anyhow::Result<()> {
    let extraction = Extraction::prepare(&args.request()?)?;
    let written = extraction.run(display::on_stderr().as_mut())?;
    if let Some(list) = written.file_list {
        println!("{}", list.display());
    }
    println!("{}", written.features.display());
    Ok(())
}
