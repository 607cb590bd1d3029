//! `lgn info`: what an lgn HDF5 file holds and whether it follows the schema.

use lgn::Result;
use std::path::PathBuf;

/// Summarise an HDF5 file: kind, datasets (shape, dtype), attributes, schema validation.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Exit status is 0 for a valid lgn file, 1 when it does not validate or cannot be read.\nThe schema is documented in docs/SCHEMA.md."
)]
pub struct InfoArgs {
    /// The HDF5 file.
    pub file: PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: InfoArgs) -> Result<()> {
    let report = lgn::io::info(&args.file)?;
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{report}");
    }
    if !report.valid {
        return Err(lgn::Error::file(
            &args.file,
            "does not validate against the lgn schema (see the problems above)",
        ));
    }
    Ok(())
}
