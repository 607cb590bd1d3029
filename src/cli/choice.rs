//! Flag values for the library's [`Named`] choices (model kinds, losses, schedules, solvers):
//! the library names its values, the command line lists and parses them.

use clap::builder::{PossibleValue, TypedValueParser};
use clap::error::{ContextKind, ContextValue, ErrorKind};
use lgn::names::Named;
use std::marker::PhantomData;

/// A value parser for a [`Named`] type: `#[arg(long, value_parser = choice::<LossKind>())]`.
/// `--help` lists every name with its help line; an unknown name is a clap error listing them.
pub fn choice<T: Named>() -> NamedParser<T> {
    NamedParser(PhantomData)
}

/// See [`choice`].
#[derive(Clone, Copy)]
pub struct NamedParser<T>(PhantomData<T>);

impl<T: Named> TypedValueParser for NamedParser<T> {
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<T, clap::Error> {
        let given = value.to_string_lossy();
        T::parse(&given).ok_or_else(|| {
            let mut e = clap::Error::new(ErrorKind::InvalidValue).with_cmd(cmd);
            if let Some(arg) = arg {
                e.insert(
                    ContextKind::InvalidArg,
                    ContextValue::String(arg.to_string()),
                );
            }
            e.insert(
                ContextKind::InvalidValue,
                ContextValue::String(given.into_owned()),
            );
            e.insert(
                ContextKind::ValidValue,
                ContextValue::Strings(T::ALL.iter().map(|v| v.as_str().to_string()).collect()),
            );
            e
        })
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(
            T::ALL
                .iter()
                .map(|v| PossibleValue::new(v.as_str()).help(v.help())),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::choice;
    use clap::Parser;
    use lgn::train::LossKind;

    #[derive(Parser, Debug)]
    struct Args {
        #[arg(long, value_parser = choice::<LossKind>(), default_value_t = LossKind::Mse)]
        loss: LossKind,
    }

    #[test]
    fn named_values_parse_default_and_refuse_unknown_names() {
        assert_eq!(Args::parse_from(["x"]).loss, LossKind::Mse);
        assert_eq!(
            Args::parse_from(["x", "--loss", "huber"]).loss,
            LossKind::Huber
        );
        let e = Args::try_parse_from(["x", "--loss", "hubr"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("hubr") && e.contains("huber") && e.contains("mse"),
            "{e}"
        );
    }
}
