//! Library choices with fixed names (model kinds, losses, schedules, solvers, model-file
//! options): one name per value, used in model files, JSON summaries and command lines alike.
//!
//! The library knows nothing of command-line parsing: an enum implements [`Named`] through the
//! [`named!`](crate::named) macro, and the `lgn` binary turns any `Named` type into a flag
//! value parser that lists the names and their help texts.

/// An enum whose values have fixed names.
pub trait Named: Copy + PartialEq + Send + Sync + 'static {
    /// Every value, in the order help texts list them.
    const ALL: &'static [Self];
    /// The value's name.
    fn as_str(self) -> &'static str;
    /// One line describing the value (for help texts).
    fn help(self) -> &'static str;
    /// The value of a name (exact match).
    fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.as_str() == s)
    }
    /// All names, comma-separated (for error messages).
    fn names() -> String {
        Self::ALL
            .iter()
            .map(|v| v.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Implement [`Named`], `Display` and `FromStr` for a field-less enum:
/// `named!(Schedule { Constant => "constant": "fixed rate", Onecycle => "onecycle": "…" });`
#[macro_export]
macro_rules! named {
    ($ty:ident { $($var:ident => $name:literal : $help:literal),+ $(,)? }) => {
        impl $crate::names::Named for $ty {
            const ALL: &'static [$ty] = &[$($ty::$var),+];
            fn as_str(self) -> &'static str {
                match self {
                    $($ty::$var => $name,)+
                }
            }
            fn help(self) -> &'static str {
                match self {
                    $($ty::$var => $help,)+
                }
            }
        }
        impl $ty {
            /// The value's name (model files, JSON, command lines).
            pub fn as_str(self) -> &'static str {
                <$ty as $crate::names::Named>::as_str(self)
            }
            /// The value of a name.
            pub fn parse(s: &str) -> Option<$ty> {
                <$ty as $crate::names::Named>::parse(s)
            }
        }
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl std::str::FromStr for $ty {
            type Err = $crate::names::UnknownName;
            fn from_str(s: &str) -> std::result::Result<$ty, Self::Err> {
                $ty::parse(s).ok_or_else(|| $crate::names::UnknownName {
                    what: stringify!($ty),
                    given: s.to_string(),
                    choices: <$ty as $crate::names::Named>::names(),
                })
            }
        }
    };
}

/// A name that is not one of a [`Named`] type's values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownName {
    /// The type asked for (e.g. "LossKind").
    pub what: &'static str,
    /// The name given.
    pub given: String,
    /// The valid names, comma-separated.
    pub choices: String,
}

impl std::fmt::Display for UnknownName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "unknown {} '{}': choose one of {}",
            self.what, self.given, self.choices
        )
    }
}

impl std::error::Error for UnknownName {}

#[cfg(test)]
mod tests {
    use super::Named;

    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Colour {
        Red,
        DeepBlue,
    }
    crate::named!(Colour { Red => "red": "the colour red", DeepBlue => "deep-blue": "dark" });

    #[test]
    fn names_round_trip_and_unknown_names_list_the_choices() {
        for &c in Colour::ALL {
            assert_eq!(Colour::parse(c.as_str()), Some(c));
            assert_eq!(c.to_string().parse::<Colour>(), Ok(c));
        }
        assert_eq!(Colour::DeepBlue.help(), "dark");
        let e = "green".parse::<Colour>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown Colour 'green': choose one of red, deep-blue"
        );
        assert_eq!(Colour::parse("Red"), None);
    }
}
