//! What the policies with CEL inputs and a conditional form share: compiling their
//! expressions (noting which variables they read, so that a request builds only those) and
//! picking the entry whose `condition` holds.

use agw_config::{FieldError, FieldPath};
use agw_policy::expr::{Expression, Inputs, VARIABLES};

/// Compiles `src` (written at `at`); the variables it reads are added to `uses`.
pub(crate) fn compile(
    at: FieldPath,
    src: &str,
    errors: &mut Vec<FieldError>,
    uses: &mut Vec<&'static str>,
) -> Option<Expression> {
    match Expression::compile(src) {
        Ok(e) => {
            uses.extend(VARIABLES.iter().filter(|v| e.reads(v)).copied());
            Some(e)
        }
        Err(msg) => {
            errors.push(FieldError::new(at, msg));
            None
        }
    }
}

/// The entry that applies: in the conditional form the first whose condition holds (an entry
/// without one always does), else the only one.
pub(crate) fn select<'a, T>(
    conditional: bool,
    entries: &'a [T],
    condition: impl Fn(&T) -> Option<&Expression>,
    inputs: &Inputs,
) -> Option<&'a T> {
    if conditional {
        entries.iter().find(|e| condition(e).is_none_or(|c| c.eval_bool(inputs)))
    } else {
        entries.first()
    }
}
