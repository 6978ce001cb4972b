//! `cornet-trainer test`: features of images, as the original `run.py test`.

use crate::bars::Bars;
use crate::cli::TestArgs;
use cornet_trainer::device::parse_device;
use cornet_trainer::extract::{ExtractRequest, Extraction, Images, Selection};

pub fn run(args: &TestArgs) -> anyhow::Result<()> {
    let selection = if args.all_taps {
        Selection::AllTaps
    } else {
        Selection::Layer {
            layer: args.layer.clone(),
            sublayer: args.sublayer.clone(),
            time_step: args.time_step,
        }
    };
    let images = match (&args.input_npy, &args.data_path) {
        (Some(npy), _) => Images::Npy(npy.clone()),
        (None, Some(dir)) => Images::Folder {
            dir: dir.clone(),
            imsize: args.imsize,
            workers: args.workers,
        },
        (None, None) => anyhow::bail!("give --input-npy or --data-path"),
    };
    let extraction = Extraction::prepare(&ExtractRequest {
        network: args.network.resolve()?,
        device: parse_device(&args.device)?,
        images,
        batch_size: args.batch_size as usize,
        selection,
        output_dir: args.output_path.clone(),
    })?;
    if let Some(list) = extraction.file_list() {
        println!("{}", list.display());
    }
    println!("{}", extraction.run(&mut Bars::default())?.display());
    Ok(())
}
