//! Partials on the GPU, and evaluation of host data larger than the device
//! by streaming it through two sets of device buffers.

use crate::loss::Dice;
use futures_intrusive::channel::shared::{oneshot_channel, OneshotReceiver};

use super::evaluator::Evaluator;
use super::plan::ignore_i32;
use super::{ignore_index, Evaluation};
use crate::chunks::{Chunk, Chunks, ROLES};
use crate::context::Context;
use crate::device::{words, BufferView, DeviceInputs, DeviceTensor};
use crate::error::{Error, Result};
use crate::inputs::{plan, DType, Inputs};
use crate::loss::{Loss, Reduction};
use crate::partial::{partial_len, Partial};

impl Evaluator<'_> {
    /// f32 values an output view needs to hold a [`Partial`] as well as the
    /// value: 3, or 3 + 3C for Dice. Only for evaluators reduced with `sum`
    /// or `mean`.
    pub fn partial_len(&self) -> usize {
        partial_len(
            self.loss(),
            self.items_shape().first().copied().unwrap_or(0),
        )
    }

    /// The partial in an output view of [`partial_len`](Self::partial_len)
    /// values that this evaluator wrote.
    pub fn partial(&self, output: &[f32]) -> Result<Partial> {
        let batch = self.input_shape().first().map_or(1, |&n| n as u64);
        Partial::from_output(self.loss(), batch, output)
    }
}

impl Context {
    /// The mergeable sums of `loss` over `inputs` (see [`Partial`]): one
    /// upload, one submit, a readback of 3 values (3 + 3C for Dice).
    pub fn partial(&self, loss: &Loss, inputs: &Inputs<'_>) -> Result<Partial> {
        let plan = plan(loss, Reduction::Sum, inputs)?;
        self.scoped(|| {
            let uploads = self.upload_inputs(loss, inputs, &plan);
            let device = uploads.device_inputs();
            let evaluator = self.evaluator(loss, Reduction::Sum, &device)?;
            let len = evaluator.partial_len();
            let output = self.storage("wgpu-loss partial", len);
            let mut encoder = self.encoder();
            evaluator.encode(&mut encoder, &device, BufferView::new(&output, 0, len))?;
            let out = self.read_after(encoder, &output, len)?;
            evaluator.partial(&out)
        })
    }

    /// Evaluates a call on host data of any size: cuts it into chunks of at
    /// most `chunk_elems` input values (whole units: see [`Chunks`]) and
    /// streams them through the device, merging the chunks' partials in f64
    /// (for `none`, concatenating their items). `progress(done, total)` is
    /// called as each chunk's result arrives, in units.
    pub fn evaluate_streamed(
        &self,
        loss: &Loss,
        reduction: Reduction,
        inputs: &Inputs<'_>,
        chunk_elems: usize,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Evaluation> {
        let chunk_elems = chunk_elems.min(self.max_binding_elements());
        let chunks = Chunks::new(loss, reduction, inputs, chunk_elems)?;
        self.evaluate_chunks(&chunks, progress)
    }

    /// [`evaluate_streamed`](Self::evaluate_streamed) on chunks cut already.
    ///
    /// Two sets of device buffers ("slots") are made once for the largest
    /// chunk: chunk k+1 is copied into the free slot and submitted before
    /// chunk k's small result is read back, so that reading the host data
    /// (page faults of a memory-mapped file included) overlaps the GPU's work.
    /// When `progress` reports a chunk, the next one has been copied out of
    /// the host data already, so a caller may drop the pages of both.
    pub fn evaluate_chunks(
        &self,
        chunks: &Chunks<'_>,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Evaluation> {
        self.scoped(|| {
            let mut acc = Acc::new();
            self.stream_slots(chunks, &mut acc, progress)?;
            acc.finish(chunks)
        })
    }

    /// Every chunk of `chunks` streamed through this device, merged but not
    /// finished: one adapter's share of a split batch.
    pub(crate) fn stream_share(&self, chunks: &Chunks<'_>) -> Result<Acc> {
        self.scoped(|| {
            let mut acc = Acc::new();
            self.stream_slots(chunks, &mut acc, &mut |_, _| {})?;
            Ok(acc)
        })
    }

    /// Streams `chunks` through the device as
    /// [`evaluate_chunks`](Self::evaluate_chunks) does, and hands each chunk,
    /// with its own result, to `on_chunk` in order as that result arrives: a
    /// [`ChunkResult::Partial`] for a reduced loss (and Dice's `none`), its
    /// items for `none`. Nothing is merged: the caller does that (with
    /// [`Partial::merge`]), checks a chunk against the reference, writes its
    /// items, or drops its pages. The chunk after the one handed over has
    /// been copied out of the host data already. An error from `on_chunk`
    /// stops the stream and is returned.
    pub fn stream_chunks<'c, E: From<Error>>(
        &self,
        chunks: &'c Chunks<'_>,
        mut on_chunk: impl FnMut(Chunk<'c>, ChunkResult) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let mut failed: Option<E> = None;
        let streamed = self.scoped(|| {
            self.stream_each(chunks, &mut |chunk, result| match on_chunk(chunk, result) {
                Ok(()) => true,
                Err(e) => {
                    failed = Some(e);
                    false
                }
            })
        });
        if let Some(e) = failed {
            return Err(e);
        }
        streamed.map_err(E::from)
    }

    /// The double-buffered stream, merging into `acc`.
    fn stream_slots(
        &self,
        chunks: &Chunks<'_>,
        acc: &mut Acc,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<()> {
        let total = chunks.units();
        let mut merged = Ok(());
        self.stream_each(chunks, &mut |chunk, result| {
            merged = match result {
                ChunkResult::Partial(p) => acc.merge(&p),
                ChunkResult::Items(items) => {
                    acc.items.extend_from_slice(&items);
                    Ok(())
                }
            };
            progress(chunk.units.end, total);
            merged.is_ok()
        })?;
        merged
    }

    /// The double-buffered stream: each chunk and its result go to
    /// `on_chunk`, which returns false to stop.
    fn stream_each<'c>(
        &self,
        chunks: &'c Chunks<'_>,
        on_chunk: &mut dyn FnMut(Chunk<'c>, ChunkResult) -> bool,
    ) -> Result<()> {
        let loss = chunks.loss();
        let partials = partials(chunks);
        let reduction = if partials {
            Reduction::Sum
        } else {
            Reduction::None
        };
        let count = chunks.len();
        let first = chunks.chunk(0)?;
        // Tensors that every chunk shares are uploaded once.
        let whole: Vec<Option<wgpu::Buffer>> = (0..ROLES.len())
            .map(|r| match first.floats(r) {
                Some(d) if chunks.is_whole(r) => {
                    Some(self.buffer_with(ROLES[r].name(), d.bytes(), wgpu::BufferUsages::STORAGE))
                }
                _ => None,
            })
            .collect();
        let buffers = slot_buffers(self, chunks, &first, 0);
        let build = |chunk: &Chunk<'_>, buffers: &[Option<wgpu::Buffer>]| {
            self.evaluator(loss, reduction, &device_inputs(chunk, buffers, &whole))
        };
        let full = build(&first, &buffers)?;
        let out_len = if partials {
            full.partial_len()
        } else {
            full.output_len()
        };
        let mut slots = vec![Slot::new(self, buffers, out_len)];
        if count > 1 {
            slots.push(Slot::new(
                self,
                slot_buffers(self, chunks, &first, 1),
                out_len,
            ));
        }
        let full_shapes: Vec<Vec<usize>> =
            (0..ROLES.len()).map(|r| first.shape(r).to_vec()).collect();
        let mut last: Option<Evaluator<'_>> = None;
        let mut pending: Option<Pending<'c>> = None;
        let mut staged: Vec<i32> = Vec::new();
        let mut next = Some(first);
        for k in 0..count {
            let chunk = match next.take() {
                Some(c) => c,
                None => chunks.chunk(k)?,
            };
            let s = k % slots.len();
            let slot = &slots[s];
            slot.write(self, &chunk, &mut staged, ignore_index(loss));
            let device = device_inputs(&chunk, &slot.buffers, &whole);
            let evaluator = if (0..ROLES.len()).all(|r| chunk.shape(r) == full_shapes[r]) {
                &full
            } else {
                if last.is_none() {
                    last = Some(build(&chunk, &slot.buffers)?);
                }
                last.as_ref().expect("built above")
            };
            let len = if partials {
                out_len
            } else {
                evaluator.output_len()
            };
            let mut encoder = self.encoder();
            evaluator.encode(&mut encoder, &device, BufferView::new(&slot.output, 0, len))?;
            let bytes = (4 * len) as u64;
            if bytes > 0 {
                encoder.copy_buffer_to_buffer(&slot.output, 0, &slot.readback, 0, bytes);
            }
            let index = self.queue.submit([encoder.finish()]);
            self.submits
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let (tx, rx) = oneshot_channel();
            if bytes > 0 {
                slot.readback
                    .slice(..bytes)
                    .map_async(wgpu::MapMode::Read, move |r| {
                        tx.send(r).ok();
                    });
            } else {
                tx.send(Ok(())).ok();
            }
            let batch = evaluator.input_shape().first().map_or(1, |&n| n as u64);
            // The previous chunk's result is read while this one runs.
            if let Some(p) = pending.take() {
                if !self.collect(p, &slots, partials, loss, on_chunk)? {
                    return Ok(());
                }
            }
            pending = Some(Pending {
                slot: s,
                index,
                rx,
                len,
                batch,
                chunk,
            });
        }
        if let Some(p) = pending.take() {
            self.collect(p, &slots, partials, loss, on_chunk)?;
        }
        Ok(())
    }

    /// Waits for one chunk's submission and hands the chunk and its result
    /// to `on_chunk`; false when it asks to stop.
    fn collect<'c>(
        &self,
        p: Pending<'c>,
        slots: &[Slot],
        partials: bool,
        loss: &Loss,
        on_chunk: &mut dyn FnMut(Chunk<'c>, ChunkResult) -> bool,
    ) -> Result<bool> {
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(p.index),
                timeout: None,
            })
            .map_err(|e| Error::gpu("waiting for the GPU", e))?;
        match pollster::block_on(p.rx.receive()) {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(Error::gpu("reading back a chunk", e)),
            None => return Err(Error::gpu_msg("a chunk's readback was dropped")),
        }
        let out = if p.len == 0 {
            vec![]
        } else {
            let readback = &slots[p.slot].readback;
            let slice = readback.slice(..(4 * p.len) as u64);
            let view = slice
                .get_mapped_range()
                .map_err(|e| Error::gpu("mapping a chunk's result", e))?;
            let out = bytemuck::cast_slice::<u8, f32>(&view).to_vec();
            drop(view);
            readback.unmap();
            out
        };
        let result = if partials {
            ChunkResult::Partial(Partial::from_output(loss, p.batch, &out)?)
        } else {
            ChunkResult::Items(out)
        };
        Ok(on_chunk(p.chunk, result))
    }
}

/// What one streamed chunk gives (see [`Context::stream_chunks`]).
#[derive(Clone, Debug, PartialEq)]
pub enum ChunkResult {
    /// The chunk's sums, for a reduced loss and for Dice's `none`. Its
    /// `batch` is the chunk's `shape[0]`; a pointwise chunk is reshaped, so
    /// set the merged partial's `batch` to [`Chunks::batch`].
    Partial(Partial),
    /// The chunk's `none` items, in the whole result's order from the item
    /// of its first unit on.
    Items(Vec<f32>),
}

/// Whether a stream of `chunks` reads back partials rather than items:
/// Dice's `none` (one loss per class) comes from the merged sums too.
fn partials(chunks: &Chunks<'_>) -> bool {
    chunks.reduction() != Reduction::None || matches!(chunks.loss(), Loss::Dice(Dice { .. }))
}

/// A chunk whose result is still on its way back.
struct Pending<'c> {
    slot: usize,
    index: wgpu::SubmissionIndex,
    rx: OneshotReceiver<Result<(), wgpu::BufferAsyncError>>,
    len: usize,
    batch: u64,
    chunk: Chunk<'c>,
}

/// Device buffers for a chunk's per-chunk tensors, sized for `first`, the
/// largest chunk.
fn slot_buffers(
    ctx: &Context,
    chunks: &Chunks<'_>,
    first: &Chunk<'_>,
    k: usize,
) -> Vec<Option<wgpu::Buffer>> {
    (0..ROLES.len())
        .map(|r| {
            if chunks.is_whole(r) {
                return None;
            }
            let bytes = match (first.floats(r), r) {
                (Some(d), _) => words(d.len(), d.dtype().size()),
                (None, 1) => 4 * first.classes()?.len() as u64,
                _ => return None,
            };
            Some(ctx.create_buffer(&wgpu::BufferDescriptor {
                label: Some(&format!("wgpu-loss stream {} {k}", ROLES[r].name())),
                size: bytes.max(16),
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }))
        })
        .collect()
}

/// One set of device buffers: a chunk's per-chunk tensors, its output and the
/// readback of that output.
struct Slot {
    buffers: Vec<Option<wgpu::Buffer>>,
    output: wgpu::Buffer,
    readback: wgpu::Buffer,
}

impl Slot {
    fn new(ctx: &Context, buffers: Vec<Option<wgpu::Buffer>>, out_len: usize) -> Slot {
        Slot {
            buffers,
            output: ctx.storage("wgpu-loss stream output", out_len),
            readback: ctx.create_buffer(&wgpu::BufferDescriptor {
                label: Some("wgpu-loss stream readback"),
                size: (4 * out_len as u64).max(16),
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
        }
    }

    /// Queues the chunk's values for the slot's buffers: wgpu copies them at
    /// once, and the copy reaches the device before the next submit.
    fn write(&self, ctx: &Context, chunk: &Chunk<'_>, staged: &mut Vec<i32>, ignore: Option<i64>) {
        for (r, buffer) in self.buffers.iter().enumerate() {
            let Some(buffer) = buffer else { continue };
            let padded;
            let bytes: &[u8] = match (chunk.floats(r), chunk.classes()) {
                // Queue writes are whole 4-byte words (an odd count of halves).
                (Some(d), _) if !d.bytes().len().is_multiple_of(4) => {
                    padded = [d.bytes(), &[0, 0]].concat();
                    &padded
                }
                (Some(d), _) => d.bytes(),
                (None, Some(c)) if r == 1 => {
                    staged.clear();
                    staged.extend(c.iter().map(|&v| {
                        if Some(v) == ignore {
                            ignore_i32(v)
                        } else {
                            v as i32
                        }
                    }));
                    bytemuck::cast_slice(staged)
                }
                _ => continue,
            };
            if !bytes.is_empty() {
                ctx.queue.write_buffer(buffer, 0, bytes);
            }
        }
    }
}

/// The chunk's tensors in a slot's `buffers` (shared ones in `whole`).
fn device_inputs<'b>(
    chunk: &'b Chunk<'_>,
    buffers: &'b [Option<wgpu::Buffer>],
    whole: &'b [Option<wgpu::Buffer>],
) -> DeviceInputs<'b> {
    let tensor = |r: usize| {
        let (len, dtype) = match (chunk.floats(r), r) {
            (Some(d), _) => (d.len(), d.dtype()),
            (None, 1) => (chunk.classes()?.len(), DType::F32),
            _ => return None,
        };
        let buffer = buffers[r].as_ref().or(whole[r].as_ref())?;
        Some(DeviceTensor::new(BufferView::new(buffer, 0, len), chunk.shape(r)).with_dtype(dtype))
    };
    let mut d = DeviceInputs::new(tensor(0).expect("every chunk has an input"));
    for (r, name) in ROLES.iter().enumerate().skip(1) {
        if let Some(t) = tensor(r) {
            d = d.with(*name, t);
        }
    }
    d.class_target = chunk.classes().is_some();
    d
}

/// What the chunks add up to: a merged partial, or the items in order.
pub(crate) struct Acc {
    partial: Option<Partial>,
    items: Vec<f32>,
}

impl Acc {
    pub(crate) fn new() -> Acc {
        Acc {
            partial: None,
            items: Vec::new(),
        }
    }

    fn merge(&mut self, p: &Partial) -> Result<()> {
        match &mut self.partial {
            Some(acc) => acc.merge(p),
            None => {
                self.partial = Some(p.clone());
                Ok(())
            }
        }
    }

    /// Appends the result of the chunks that follow this one's.
    pub(crate) fn absorb(&mut self, next: Acc) -> Result<()> {
        if let Some(p) = &next.partial {
            self.merge(p)?;
        }
        self.items.extend(next.items);
        Ok(())
    }

    /// The result of the whole call that `chunks` cut.
    pub(crate) fn finish(self, chunks: &Chunks<'_>) -> Result<Evaluation> {
        let items_shape = chunks.items_shape().to_vec();
        let loss = chunks.loss();
        let Some(mut partial) = self.partial else {
            return Ok(Evaluation {
                value: self.items.iter().map(|v| *v as f64).sum(),
                items: Some(self.items),
                items_shape,
            });
        };
        // Chunks of the pointwise losses are reshaped: the batch is the call's.
        partial.batch = chunks.batch();
        if chunks.reduction() == Reduction::None {
            let items: Vec<f32> = partial
                .dice_items(loss)?
                .into_iter()
                .map(|v| v as f32)
                .collect();
            return Ok(Evaluation {
                value: items.iter().map(|v| *v as f64).sum(),
                items: Some(items),
                items_shape,
            });
        }
        Ok(Evaluation {
            value: partial.value(loss, chunks.reduction())?,
            items: None,
            items_shape,
        })
    }
}
