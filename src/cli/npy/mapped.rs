//! A `.npy` file memory-mapped rather than read.

use std::path::Path;

use super::array::{Array, NpyError};
use super::header::{truncated, Header, Kind};
use super::read::{convert, open_header};

/// A `.npy` file mapped into memory instead of read: its header is checked
/// as [`read`](super::read()) checks it (the declared data must fill the file exactly), and
/// little-endian float32, float16 and int64 data are used in place, so a file larger
/// than RAM costs only the pages being read. Other dtypes are converted
/// whole by [`Mapped::to_array`].
///
/// The file must not be truncated or rewritten while it is mapped: the
/// operating system would then show the new bytes or end the process with
/// SIGBUS.
pub struct Mapped {
    map: memmap2::Mmap,
    header: Header,
}

impl Mapped {
    /// Maps `path` after validating its header against its length.
    pub fn open(path: impl AsRef<Path>) -> Result<Mapped, NpyError> {
        let path = path.as_ref();
        let io_err = |source| NpyError::Io {
            path: path.to_path_buf(),
            source,
        };
        let (file, header, _) = open_header(path)?;
        // SAFETY: a read-only shared mapping; the caller keeps the file
        // unchanged while it is mapped (see the type's docs).
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io_err)?;
        // The length check above used the metadata; the file may have changed since.
        if map.len() as u64 != header.offset as u64 + header.bytes {
            return Err(truncated(path, &header, map.len() as u64));
        }
        #[cfg(unix)]
        let _ = map.advise(memmap2::Advice::Sequential);
        Ok(Mapped { map, header })
    }

    pub fn shape(&self) -> &[usize] {
        &self.header.shape
    }

    /// The file's dtype, e.g. `<f4`.
    pub fn dtype(&self) -> &str {
        &self.header.descr
    }

    /// Bytes of data (after the header).
    pub fn data_bytes(&self) -> u64 {
        self.header.bytes
    }

    /// The data's bytes, as the file holds them.
    pub fn body(&self) -> &[u8] {
        &self.map[self.header.offset..]
    }

    fn native(&self, kind: Kind, size: usize) -> bool {
        let d = self.header.dtype;
        d.kind == kind && d.size == size && d.big_endian == cfg!(target_endian = "big")
    }

    /// The data in place, for native-endian float32 whose data starts
    /// 4-byte aligned (numpy aligns it to 64 bytes).
    pub fn f32(&self) -> Option<&[f32]> {
        if !self.native(Kind::Float, 4) {
            return None;
        }
        bytemuck::try_cast_slice(self.body()).ok()
    }

    /// The data in place, for native-endian float16 whose data starts 2-byte aligned.
    pub fn f16(&self) -> Option<&[half::f16]> {
        if !self.native(Kind::Float, 2) {
            return None;
        }
        bytemuck::try_cast_slice(self.body()).ok()
    }

    /// The data in place, for native-endian int64 whose data starts 8-byte aligned.
    pub fn i64(&self) -> Option<&[i64]> {
        if !self.native(Kind::Int, 8) {
            return None;
        }
        bytemuck::try_cast_slice(self.body()).ok()
    }

    /// A converted copy of the whole array, as [`read`](super::read()) gives it.
    pub fn to_array(&self) -> Array {
        Array {
            shape: self.header.shape.clone(),
            data: convert(&self.header.dtype, self.header.count, self.body()),
            dtype: self.header.descr.clone(),
        }
    }

    /// Drops the resident pages of the data from `done.start / total` to
    /// `done.end / total` from this process (not from the page cache): what
    /// a stream has read then stops counting towards its memory. Reading
    /// them again reloads them from the file, so this never changes what the
    /// data reads as. Only whole pages inside the range are dropped. A read
    /// next to a dropped page may map again the whole large folio the page
    /// cache holds it in, so a stream passes all it has read so far, not
    /// only its last chunk.
    pub fn release(&self, done: std::ops::Range<usize>, total: usize) {
        let start = self.header.offset;
        release(
            &self.map,
            start..start + self.header.bytes as usize,
            done,
            total,
        );
    }
}

/// Drops the resident pages of `data` (bytes of `map`) from `done.start /
/// total` to `done.end / total` of it from this process, as
/// [`Mapped::release`] does for a `.npy` file's data.
pub fn release(
    map: &memmap2::Mmap,
    data: std::ops::Range<usize>,
    done: std::ops::Range<usize>,
    total: usize,
) {
    if total == 0 || done.start >= done.end {
        return;
    }
    let bytes = data.end.saturating_sub(data.start);
    let at =
        |u: usize| data.start + (bytes as u128 * u.min(total) as u128 / total as u128) as usize;
    let (from, to) = (
        at(done.start).div_ceil(PAGE) * PAGE,
        at(done.end) / PAGE * PAGE,
    );
    #[cfg(unix)]
    if to > from {
        // SAFETY: the mapping is shared, read-only and file-backed: its
        // dropped pages read back as the same bytes of the unchanged file.
        let _ = unsafe {
            map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, from, to - from)
        };
    }
    #[cfg(not(unix))]
    let _ = (map, from, to);
}

/// Pages released by [`Mapped::release`] start and end on multiples of this.
const PAGE: usize = 4096;
