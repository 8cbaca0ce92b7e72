//! The big-endian field codec of the record files documented byte by byte (`__transactions.meta`,
//! `__users.meta`, `__acls.meta`): strings and byte fields as a `u16` length then the bytes,
//! counts as `u32`, integers big-endian. Writers refuse what does not fit; the `Reader` checks
//! every read against the bytes left, so a short or garbled payload is an error, never a panic.

/// A string: `u16` length, UTF-8 bytes.
pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) -> Result<(), String> {
    put_bytes(out, s.as_bytes())
}

/// A byte field: `u16` length, the bytes.
pub(crate) fn put_bytes(out: &mut Vec<u8>, b: &[u8]) -> Result<(), String> {
    let n = u16::try_from(b.len()).map_err(|_| format!("field of {} bytes", b.len()))?;
    out.extend_from_slice(&n.to_be_bytes());
    out.extend_from_slice(b);
    Ok(())
}

/// A count of elements that follow: `u32`.
pub(crate) fn put_count(out: &mut Vec<u8>, n: usize) -> Result<(), String> {
    let n = u32::try_from(n).map_err(|_| format!("{n} elements"))?;
    out.extend_from_slice(&n.to_be_bytes());
    Ok(())
}

/// Reads a payload front to back; every read checks the bytes are there.
pub(crate) struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn new(payload: &'a [u8]) -> Reader<'a> {
        Reader(payload)
    }

    /// Bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err(format!(
                "truncated: {n} bytes wanted, {} left",
                self.0.len()
            ));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn i8(&mut self) -> Result<i8, String> {
        Ok(i8::from_be_bytes(self.array()?))
    }

    pub(crate) fn i16(&mut self) -> Result<i16, String> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    pub(crate) fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    /// A byte field (`u16` length, the bytes).
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = u16::from_be_bytes(self.array()?) as usize;
        self.take(n)
    }

    /// A string (`u16` length, UTF-8).
    pub(crate) fn string(&mut self) -> Result<String, String> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_and_short_payloads_are_errors() {
        let mut out = Vec::new();
        put_str(&mut out, "héllo").unwrap();
        put_bytes(&mut out, &[1, 2, 3]).unwrap();
        put_count(&mut out, 7).unwrap();
        out.extend_from_slice(&(-2i64).to_be_bytes());
        let mut r = Reader::new(&out);
        assert_eq!(r.string().unwrap(), "héllo");
        assert_eq!(r.bytes().unwrap(), [1, 2, 3]);
        assert_eq!(r.u32().unwrap(), 7);
        assert_eq!(r.i64().unwrap(), -2);
        assert_eq!(r.remaining(), 0);
        assert!(r.u8().is_err());
        assert!(Reader::new(&[0, 5, b'a']).string().is_err());
        assert!(Reader::new(&[0, 1, 0xff]).string().is_err());
        assert!(put_str(&mut Vec::new(), &"x".repeat(70_000)).is_err());
    }
}
