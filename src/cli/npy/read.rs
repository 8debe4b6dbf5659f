//! Reading a whole file, from disk or from memory.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use super::array::{Array, Data, NpyError};
use super::header::{header, preamble, truncated, Dtype, Header, Kind};

/// Opens `path` and validates its preamble and header against the file's
/// length, reading at most the header; the file is left at the data.
pub(super) fn open_header(path: &Path) -> Result<(File, Header, u64), NpyError> {
    let io_err = |source| NpyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(io_err)?;
    let meta = file.metadata().map_err(io_err)?;
    if meta.is_dir() {
        return Err(io_err(io::Error::other("is a directory, not a .npy file")));
    }
    let file_len = meta.len();
    // The preamble and header: at most MAX_HEADER bytes, and never more than the file.
    let mut head = Vec::new();
    (&mut file)
        .take(12)
        .read_to_end(&mut head)
        .map_err(io_err)?;
    let header_len = preamble(path, &head)?;
    let want = header_len.saturating_sub(head.len());
    (&mut file)
        .take(want as u64)
        .read_to_end(&mut head)
        .map_err(io_err)?;
    let header = header(path, &head, file_len)?;
    Ok((file, header, file_len))
}

/// Reads a `.npy` file.
pub fn read(path: impl AsRef<Path>) -> Result<Array, NpyError> {
    let path = path.as_ref();
    let io_err = |source| NpyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let (mut file, header, file_len) = open_header(path)?;
    let data = read_data(&mut file, &header).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => truncated(path, &header, file_len),
        _ => io_err(e),
    })?;
    // The length check above used the metadata; make sure the file did not grow since.
    let mut extra = [0u8; 1];
    if file.read(&mut extra).map_err(io_err)? != 0 {
        return Err(NpyError::Trailing {
            path: path.to_path_buf(),
            shape: header.shape,
            descr: header.descr,
            extra: file_len
                .saturating_sub(header.offset as u64 + header.bytes)
                .max(1),
        });
    }
    Ok(Array {
        shape: header.shape,
        data,
        dtype: header.descr,
    })
}

/// Parses a whole `.npy` file held in memory; `name` is used in messages.
pub fn parse(name: impl AsRef<Path>, bytes: &[u8]) -> Result<Array, NpyError> {
    let path = name.as_ref();
    let head_len = preamble(path, bytes)?;
    let header = header(
        path,
        &bytes[..head_len.min(bytes.len())],
        bytes.len() as u64,
    )?;
    let body = &bytes[header.offset..];
    Ok(Array {
        data: convert(&header.dtype, header.count, body),
        shape: header.shape,
        dtype: header.descr,
    })
}

/// Reads exactly `header.count` elements, allocating only what the file holds.
fn read_data(file: &mut File, header: &Header) -> io::Result<Data> {
    let d = header.dtype;
    if d.kind == Kind::Float && d.size == 4 && d.big_endian == cfg!(target_endian = "big") {
        let mut out = vec![0f32; header.count];
        file.read_exact(bytemuck::cast_slice_mut(&mut out))?;
        return Ok(Data::F32(out));
    }
    let mut raw = vec![0u8; header.bytes as usize];
    file.read_exact(&mut raw)?;
    Ok(convert(&d, header.count, &raw))
}

/// Converts `count` elements from `raw`, which holds at least `count * size` bytes.
pub(super) fn convert(d: &Dtype, count: usize, raw: &[u8]) -> Data {
    let chunks = raw.chunks_exact(d.size).take(count);
    let word = |c: &[u8]| {
        let mut b = [0u8; 8];
        if d.big_endian {
            b[8 - c.len()..].copy_from_slice(c);
            u64::from_be_bytes(b)
        } else {
            b[..c.len()].copy_from_slice(c);
            u64::from_le_bytes(b)
        }
    };
    match (d.kind, d.size) {
        (Kind::Float, 2) => Data::F16(
            chunks
                .map(|c| half::f16::from_bits(word(c) as u16))
                .collect(),
        ),
        (Kind::Float, 4) => Data::F32(chunks.map(|c| f32::from_bits(word(c) as u32)).collect()),
        (Kind::Float, _) => Data::F32(chunks.map(|c| f64::from_bits(word(c)) as f32).collect()),
        (Kind::Int, size) => {
            let shift = 64 - 8 * size as u32;
            Data::I64(
                chunks
                    .map(|c| ((word(c) << shift) as i64) >> shift)
                    .collect(),
            )
        }
        (Kind::Uint, _) => Data::I64(chunks.map(|c| word(c) as i64).collect()),
        (Kind::Bool, _) => Data::I64(chunks.map(|c| (word(c) != 0) as i64).collect()),
    }
}
