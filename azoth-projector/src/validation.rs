//! Input checks, run before anything is queued or written.

use azoth_core::{AzothError, MAX_KEY_LEN, Operation, Result};

/// Keys are 1..=[`MAX_KEY_LEN`] bytes (LMDB's limit).
pub(crate) fn check_key(key: &[u8]) -> Result<()> {
    if key.is_empty() {
        return Err(AzothError::EmptyKey);
    }
    if key.len() > MAX_KEY_LEN {
        return Err(AzothError::KeyTooLarge {
            len: key.len(),
            max: MAX_KEY_LEN,
        });
    }
    Ok(())
}

/// Values are at most the configured maximum.
pub(crate) fn check_value(value: &[u8], max: usize) -> Result<()> {
    if value.len() > max {
        return Err(AzothError::ValueTooLarge {
            len: value.len(),
            max,
        });
    }
    Ok(())
}

/// Checks every operation of a batch, so a bad one refuses the whole batch.
pub(crate) fn check_operation(op: &Operation, max_value: usize) -> Result<()> {
    check_key(op.key())?;
    if let Operation::Put { value, .. } = op {
        check_value(value, max_value)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert!(matches!(check_key(b""), Err(AzothError::EmptyKey)));
        assert!(check_key(&[1; MAX_KEY_LEN]).is_ok());
        assert!(matches!(
            check_key(&[1; MAX_KEY_LEN + 1]),
            Err(AzothError::KeyTooLarge { len: 512, max: 511 })
        ));
        assert!(check_value(&[0; 4], 4).is_ok());
        assert!(matches!(
            check_value(&[0; 5], 4),
            Err(AzothError::ValueTooLarge { len: 5, max: 4 })
        ));
    }
}
