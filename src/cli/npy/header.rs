//! The preamble and the header: the magic, the version, the header's
//! Python dict literal and the dtype, each checked against the file length.

use std::path::Path;

use super::array::NpyError;

pub(super) const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// numpy refuses headers over 10 000 bytes by default; allow more, but bounded.
const MAX_HEADER: usize = 1 << 20;
/// Nesting depth of the header literal (a structured dtype is a list of tuples).
const MAX_DEPTH: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Kind {
    Float,
    Int,
    Uint,
    Bool,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Dtype {
    pub(super) kind: Kind,
    pub(super) size: usize,
    pub(super) big_endian: bool,
}

/// What the header declares.
pub(super) struct Header {
    pub(super) descr: String,
    pub(super) dtype: Dtype,
    pub(super) shape: Vec<usize>,
    /// Bytes before the data.
    pub(super) offset: usize,
    /// Element count and data bytes, both proven to fit in `usize`.
    pub(super) count: usize,
    pub(super) bytes: u64,
}

/// Checks the magic and version and returns the total length of preamble +
/// header, bounded by `MAX_HEADER`.
pub(super) fn preamble(path: &Path, head: &[u8]) -> Result<usize, NpyError> {
    if head.len() < 8 || &head[..6] != MAGIC {
        return Err(NpyError::NotNpy {
            path: path.to_path_buf(),
        });
    }
    let (major, minor) = (head[6], head[7]);
    let (start, len) = match major {
        1 if head.len() >= 10 => (10, u16::from_le_bytes([head[8], head[9]]) as usize),
        2 | 3 if head.len() >= 12 => (
            12,
            u32::from_le_bytes([head[8], head[9], head[10], head[11]]) as usize,
        ),
        1..=3 => return Err(NpyError::header(path, "the file ends inside the preamble")),
        _ => {
            return Err(NpyError::header(
                path,
                format!("unknown format version {major}.{minor}"),
            ))
        }
    };
    if len > MAX_HEADER {
        return Err(NpyError::header(
            path,
            format!("header of {len} bytes is larger than {MAX_HEADER}"),
        ));
    }
    Ok(start + len)
}

pub(super) fn header(path: &Path, head: &[u8], file_len: u64) -> Result<Header, NpyError> {
    let start = if head.get(6) == Some(&1) { 10 } else { 12 };
    // `preamble` bounded the declared length; a shorter `head` means the file ended.
    let declared = preamble(path, head)?;
    if head.len() < declared {
        return Err(NpyError::header(path, "the file ends inside the header"));
    }
    let text = std::str::from_utf8(&head[start..declared])
        .map_err(|_| NpyError::header(path, "the header is not text"))?;
    let fields = Parser::new(text)
        .dict()
        .map_err(|reason| NpyError::header(path, reason))?;

    let mut descr = None;
    let mut fortran = None;
    let mut shape = None;
    for (key, value) in fields {
        match (key.as_str(), value) {
            ("descr", Value::Str(s)) => descr = Some(s),
            ("descr", _) => {
                return Err(NpyError::Dtype {
                    path: path.to_path_buf(),
                    descr: "[...]".into(),
                    kind: "a structured dtype",
                })
            }
            ("fortran_order", Value::Bool(b)) => fortran = Some(b),
            ("shape", Value::Tuple(dims)) => {
                let dims =
                    dims.into_iter()
                        .map(|d| match d {
                            Value::Int(n) => usize::try_from(n)
                                .map_err(|_| format!("dimension {n} is too large")),
                            _ => Err("shape must be a tuple of non-negative integers".to_string()),
                        })
                        .collect::<Result<Vec<usize>, String>>()
                        .map_err(|reason| NpyError::header(path, reason))?;
                shape = Some(dims)
            }
            (key @ ("fortran_order" | "shape"), _) => {
                return Err(NpyError::header(
                    path,
                    format!("`{key}` has the wrong type"),
                ))
            }
            _ => {}
        }
    }
    let descr = descr.ok_or_else(|| NpyError::header(path, "no `descr` key"))?;
    let fortran = fortran.ok_or_else(|| NpyError::header(path, "no `fortran_order` key"))?;
    let shape = shape.ok_or_else(|| NpyError::header(path, "no `shape` key"))?;
    let dtype = dtype(&descr).map_err(|kind| NpyError::Dtype {
        path: path.to_path_buf(),
        // Escaped: the message stays one line whatever the file holds.
        descr: descr.escape_debug().to_string(),
        kind,
    })?;
    // Fortran order is harmless for 0-d and 1-d arrays, and numpy writes it for them.
    if fortran && shape.iter().filter(|&&d| d != 1).count() > 1 {
        return Err(NpyError::FortranOrder {
            path: path.to_path_buf(),
        });
    }
    // Every partial product of the shape must fit in usize, even when another
    // dim is 0, so that callers may multiply any subset of the dims.
    let nonzero = shape
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(1usize, |acc, &d| acc.checked_mul(d));
    let too_large = || NpyError::header(path, format!("shape {shape:?} is too large"));
    nonzero.ok_or_else(too_large)?;
    let count = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(too_large)?;
    let bytes = (count as u64)
        .checked_mul(dtype.size as u64)
        .ok_or_else(too_large)?;
    let header = Header {
        descr,
        dtype,
        shape,
        offset: declared,
        count,
        bytes,
    };
    let available = file_len.saturating_sub(declared as u64);
    if available < bytes {
        return Err(truncated(path, &header, file_len));
    }
    if available > bytes {
        return Err(NpyError::Trailing {
            path: path.to_path_buf(),
            shape: header.shape,
            descr: header.descr,
            extra: available - bytes,
        });
    }
    Ok(header)
}

pub(super) fn truncated(path: &Path, h: &Header, file_len: u64) -> NpyError {
    NpyError::Truncated {
        path: path.to_path_buf(),
        shape: h.shape.clone(),
        descr: h.descr.clone(),
        expected: h.bytes,
        actual: file_len.saturating_sub(h.offset as u64),
    }
}

/// The supported dtypes, or what the unsupported one is.
fn dtype(descr: &str) -> Result<Dtype, &'static str> {
    let mut chars = descr.chars();
    let order = chars.next().ok_or("an empty dtype")?;
    let code: String = chars.collect();
    let big_endian = match order {
        '<' | '|' => false,
        '>' => true,
        '=' => cfg!(target_endian = "big"),
        _ => return Err("not a simple dtype"),
    };
    let (kind, size) = match code.as_str() {
        "f2" => (Kind::Float, 2),
        "f4" => (Kind::Float, 4),
        "f8" => (Kind::Float, 8),
        "i1" => (Kind::Int, 1),
        "i2" => (Kind::Int, 2),
        "i4" => (Kind::Int, 4),
        "i8" => (Kind::Int, 8),
        "u1" => (Kind::Uint, 1),
        "u2" => (Kind::Uint, 2),
        "u4" => (Kind::Uint, 4),
        "b1" => (Kind::Bool, 1),
        "u8" => return Err("uint64"),
        _ => {
            return Err(match code.chars().next() {
                Some('f') => "a float of unusual size",
                Some('c') => "complex",
                Some('U') => "a unicode string",
                Some('S') | Some('a') => "a byte string",
                Some('O') => "Python objects",
                Some('M') => "datetime",
                Some('m') => "timedelta",
                Some('V') => "raw bytes",
                _ => "unknown",
            })
        }
    };
    Ok(Dtype {
        kind,
        size,
        big_endian,
    })
}

/// A value of the header's Python literal.
#[derive(Debug)]
enum Value {
    Str(String),
    Bool(bool),
    Int(u64),
    Tuple(Vec<Value>),
    Other,
}

/// Parses the header's dict literal: strings, True/False/None, non-negative
/// integers, tuples and lists.
struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    fn new(s: &'a str) -> Self {
        Parser {
            s: s.as_bytes(),
            i: 0,
        }
    }

    fn skip_ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("expected `{}` at byte {}", c as char, self.i))
        }
    }

    fn dict(mut self) -> Result<Vec<(String, Value)>, String> {
        self.expect(b'{')?;
        let mut fields = Vec::new();
        while !self.eat(b'}') {
            let key = match self.value(0)? {
                Value::Str(k) => k,
                _ => return Err("a dict key is not a string".into()),
            };
            self.expect(b':')?;
            fields.push((key, self.value(0)?));
            if !self.eat(b',') {
                self.expect(b'}')?;
                break;
            }
        }
        if self.peek().is_some() {
            return Err("unexpected text after the dict".into());
        }
        Ok(fields)
    }

    fn value(&mut self, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err("the header nests too deeply".into());
        }
        match self.peek() {
            Some(q @ (b'\'' | b'"')) => {
                self.i += 1;
                let start = self.i;
                while self.i < self.s.len() && self.s[self.i] != q {
                    if self.s[self.i] == b'\\' {
                        return Err("escapes in header strings are not supported".into());
                    }
                    self.i += 1;
                }
                if self.i >= self.s.len() {
                    return Err("unterminated string".into());
                }
                let text = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
                self.i += 1;
                Ok(Value::Str(text))
            }
            Some(open @ (b'(' | b'[')) => {
                self.i += 1;
                let close = if open == b'(' { b')' } else { b']' };
                let mut items = Vec::new();
                while !self.eat(close) {
                    items.push(self.value(depth + 1)?);
                    if !self.eat(b',') {
                        self.expect(close)?;
                        break;
                    }
                }
                Ok(if open == b'(' {
                    Value::Tuple(items)
                } else {
                    Value::Other
                })
            }
            Some(c) if c.is_ascii_digit() => {
                let start = self.i;
                while self.i < self.s.len() && self.s[self.i].is_ascii_digit() {
                    self.i += 1;
                }
                let digits = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
                // Python 2 wrote long integers as `3L`.
                if self.s.get(self.i) == Some(&b'L') {
                    self.i += 1;
                }
                digits
                    .parse()
                    .map(Value::Int)
                    .map_err(|_| format!("integer {digits} is too large"))
            }
            Some(c) if c.is_ascii_alphabetic() => {
                let start = self.i;
                while self.i < self.s.len() && self.s[self.i].is_ascii_alphanumeric() {
                    self.i += 1;
                }
                match &self.s[start..self.i] {
                    b"True" => Ok(Value::Bool(true)),
                    b"False" => Ok(Value::Bool(false)),
                    b"None" => Ok(Value::Other),
                    w => Err(format!("unexpected `{}`", String::from_utf8_lossy(w))),
                }
            }
            Some(b'-') => Err("negative number in the header".into()),
            Some(c) => Err(format!("unexpected `{}` at byte {}", c as char, self.i)),
            None => Err("the header ends early".into()),
        }
    }
}
