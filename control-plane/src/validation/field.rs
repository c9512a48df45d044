//! Field errors in Kubernetes' words, so messages read exactly like the
//! API server's: `spec.ports[0].port: Invalid value: 70000: must be between 1
//! and 65535, inclusive`.

use std::fmt;

/// The offending value as Kubernetes prints it: numbers bare, strings quoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadValue {
    Int(i64),
    Str(String),
    /// Already rendered as Go's `%#v` would (maps, slices, structs).
    Raw(String),
}

impl From<i32> for BadValue {
    fn from(v: i32) -> Self {
        BadValue::Int(v.into())
    }
}

impl From<i64> for BadValue {
    fn from(v: i64) -> Self {
        BadValue::Int(v)
    }
}

impl From<&str> for BadValue {
    fn from(v: &str) -> Self {
        BadValue::Str(v.to_string())
    }
}

impl From<String> for BadValue {
    fn from(v: String) -> Self {
        BadValue::Str(v)
    }
}

impl fmt::Display for BadValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadValue::Int(n) => write!(f, "{n}"),
            BadValue::Str(s) => write!(f, "{s:?}"),
            BadValue::Raw(s) => f.write_str(s),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    Invalid {
        value: BadValue,
        detail: String,
    },
    Required {
        detail: Option<String>,
    },
    Duplicate {
        value: BadValue,
    },
    NotSupported {
        value: BadValue,
        supported: Vec<String>,
    },
    Forbidden {
        detail: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub path: String,
    pub reason: Reason,
}

impl FieldError {
    pub fn invalid(
        path: impl Into<String>,
        value: impl Into<BadValue>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            path: path.into(),
            reason: Reason::Invalid {
                value: value.into(),
                detail: detail.into(),
            },
        }
    }

    pub fn required(path: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            reason: Reason::Required { detail: None },
        }
    }

    pub fn required_because(path: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            reason: Reason::Required {
                detail: Some(detail.into()),
            },
        }
    }

    pub fn duplicate(path: impl Into<String>, value: impl Into<BadValue>) -> Self {
        Self {
            path: path.into(),
            reason: Reason::Duplicate {
                value: value.into(),
            },
        }
    }

    pub fn not_supported(
        path: impl Into<String>,
        value: impl Into<BadValue>,
        supported: &[&str],
    ) -> Self {
        Self {
            path: path.into(),
            reason: Reason::NotSupported {
                value: value.into(),
                supported: supported.iter().map(|s| s.to_string()).collect(),
            },
        }
    }

    pub fn forbidden(path: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            reason: Reason::Forbidden {
                detail: detail.into(),
            },
        }
    }
}

impl FieldError {
    /// What follows the path (`Invalid value: 70000: must be …`): a
    /// Kubernetes Status cause's message, whose field is the path.
    pub fn message(&self) -> String {
        let whole = self.to_string();
        whole
            .strip_prefix(&format!("{}: ", self.path))
            .unwrap_or(&whole)
            .to_string()
    }

    /// The cause type kube-apiserver reports (`FieldValueInvalid`, …).
    pub fn cause_type(&self) -> &'static str {
        match self.reason {
            Reason::Invalid { .. } => "FieldValueInvalid",
            Reason::Required { .. } => "FieldValueRequired",
            Reason::Duplicate { .. } => "FieldValueDuplicate",
            Reason::NotSupported { .. } => "FieldValueNotSupported",
            Reason::Forbidden { .. } => "FieldValueForbidden",
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.path)?;
        match &self.reason {
            Reason::Invalid { value, detail } => write!(f, "Invalid value: {value}: {detail}"),
            Reason::Required { detail: None } => f.write_str("Required value"),
            Reason::Required {
                detail: Some(detail),
            } => write!(f, "Required value: {detail}"),
            Reason::Duplicate { value } => write!(f, "Duplicate value: {value}"),
            Reason::NotSupported { value, supported } => {
                let quoted: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
                write!(
                    f,
                    "Unsupported value: {value}: supported values: {}",
                    quoted.join(", ")
                )
            }
            Reason::Forbidden { detail } => write!(f, "Forbidden: {detail}"),
        }
    }
}

/// Every problem found in one object; never empty when returned as an error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldErrors(pub Vec<FieldError>);

impl FieldErrors {
    pub fn push(&mut self, e: FieldError) {
        self.0.push(e);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &FieldError> {
        self.0.iter()
    }

    /// `Ok(())` when nothing was found, so validators can end with `errs.into_result()`.
    pub fn into_result(self) -> Result<(), FieldErrors> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }
}

impl From<FieldError> for FieldErrors {
    fn from(e: FieldError) -> Self {
        FieldErrors(vec![e])
    }
}

impl fmt::Display for FieldErrors {
    /// One error stands alone; several are bracketed, as the API server does.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        match parts.as_slice() {
            [one] => f.write_str(one),
            _ => write!(f, "[{}]", parts.join(", ")),
        }
    }
}

impl std::error::Error for FieldErrors {}
