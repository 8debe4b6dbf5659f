//! Kernel variants: the ways a family can run its losses (a thread, a
//! subgroup or a workgroup per row, ...). Each family lists the variants a
//! shape may use on an adapter, its best guess first (`variants` beside its
//! `schedule`), and schedules any of them. [`Variant`] names them for users
//! (`WGPU_LOSS_VARIANT`, [`Context::with_variant`](crate::Context::with_variant),
//! the tuner's cache, `bench`); the tuner (`gpu::tune`) picks among the
//! eligible ones.

use std::cell::RefCell;
use std::fmt;
use std::str::FromStr;

use super::pairs::{self, PairsVariant};
use super::plan::Caps;
use crate::error::{Error, Result};
use crate::inputs::Geometry;
use crate::loss::Loss;

use super::dice::{self, DiceVariant};
use super::pointwise::{self, PointVariant as PointwiseVariant};
use super::rows::{self, RowsVariant};

/// One family's variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Pointwise(PointwiseVariant),
    Rows(RowsVariant),
    Pairs(PairsVariant),
    Dice(DiceVariant),
}

/// A kernel variant: one way of running the losses of a family, such as a
/// workgroup per row (`pair-workgroup`) or a subgroup per row
/// (`pair-subgroup`) for the pair losses. Every variant gives the same
/// results to within rounding; they differ in speed, which depends on the
/// adapter and the shape. An evaluator takes the variant forced for its
/// family (`WGPU_LOSS_VARIANT`, [`Context::with_variant`]), else the tuner's
/// choice (see [`Context::tune`]); [`Evaluator::variant`] tells which it
/// runs.
///
/// [`Context::with_variant`]: crate::Context::with_variant
/// [`Context::tune`]: crate::Context::tune
/// [`Evaluator::variant`]: crate::Evaluator::variant
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Variant(pub(crate) Kind);

impl Variant {
    /// Every variant of every family.
    pub fn all() -> Vec<Variant> {
        let point = PointwiseVariant::ALL.iter().map(|&v| Kind::Pointwise(v));
        let rows = RowsVariant::ALL.iter().map(|&v| Kind::Rows(v));
        let pairs = PairsVariant::ALL.iter().map(|&v| Kind::Pairs(v));
        let dice = DiceVariant::ALL.iter().map(|&v| Kind::Dice(v));
        point
            .chain(rows)
            .chain(pairs)
            .chain(dice)
            .map(Variant)
            .collect()
    }

    /// The variant of this name (kebab-case, unique across families).
    pub fn from_name(name: &str) -> Option<Variant> {
        Self::all().into_iter().find(|v| v.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self.0 {
            Kind::Pointwise(v) => v.name(),
            Kind::Rows(v) => v.name(),
            Kind::Pairs(v) => v.name(),
            Kind::Dice(v) => v.name(),
        }
    }

    /// The family whose losses it runs: "pointwise", "rows", "pairs" or "dice".
    pub fn family(self) -> &'static str {
        match self.0 {
            Kind::Pointwise(_) => "pointwise",
            Kind::Rows(_) => "rows",
            Kind::Pairs(_) => "pairs",
            Kind::Dice(_) => "dice",
        }
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Debug for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Variant {
    type Err = Error;

    fn from_str(name: &str) -> Result<Variant> {
        Variant::from_name(name).ok_or_else(|| Error::Variant {
            name: name.to_string(),
            problem: format!("no such variant (one of: {})", names()),
        })
    }
}

thread_local! {
    /// The variants [`with_forced_variant`] forces on this thread, one per
    /// family.
    static FORCED_HERE: RefCell<Vec<Variant>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with every evaluator that this thread builds inside it running
/// the variant `name` for its family (a call the variant cannot run is an
/// [`Error::Variant`]), before what the context forces. A test hook: it
/// reaches variants from inside calls that build their own evaluators
/// (`evaluate`, `prepare`, streaming). Users force variants with
/// [`Context::with_variant`](crate::Context::with_variant) or
/// `WGPU_LOSS_VARIANT`.
#[doc(hidden)]
pub fn with_forced_variant<R>(name: &str, f: impl FnOnce() -> R) -> Result<R> {
    let variant: Variant = name.parse()?;
    let before = FORCED_HERE.with_borrow_mut(|list| {
        let before = list.clone();
        list.retain(|v| v.family() != variant.family());
        list.push(variant);
        before
    });
    // Restored on unwinding too, so that a failed test leaves no variant behind.
    struct Restore(Vec<Variant>);
    impl Drop for Restore {
        fn drop(&mut self) {
            FORCED_HERE.set(std::mem::take(&mut self.0));
        }
    }
    let _restore = Restore(before);
    Ok(f())
}

/// The variants [`with_forced_variant`] forces on this thread.
pub(crate) fn forced_here() -> Vec<Variant> {
    FORCED_HERE.with_borrow(|list| list.clone())
}

/// The names of the variants that may run `loss` on these inputs' shapes on
/// `ctx`'s adapter, the best guess first, whatever is forced. A test hook.
#[doc(hidden)]
pub fn variant_names(
    ctx: &crate::Context,
    loss: &Loss,
    reduction: crate::loss::Reduction,
    inputs: &crate::Inputs<'_>,
) -> Result<Vec<&'static str>> {
    let plan = crate::inputs::plan(loss, reduction, inputs)?;
    Ok(eligible(&plan.geometry, &ctx.caps)
        .into_iter()
        .map(Variant::name)
        .collect())
}

/// Every variant's name, comma-separated.
pub(crate) fn names() -> String {
    let all: Vec<&str> = Variant::all().into_iter().map(Variant::name).collect();
    all.join(", ")
}

/// The family of a loss, as [`Variant::family`] names it.
pub(crate) fn family(loss: &Loss) -> &'static str {
    match loss {
        Loss::Pointwise(_) => "pointwise",
        Loss::Rows(_) => "rows",
        Loss::Pairs(_) => "pairs",
        Loss::Dice(_) => "dice",
    }
}

/// The variants this shape may use on an adapter with `caps`, the family's
/// best guess first.
pub(crate) fn eligible(geometry: &Geometry<'_>, caps: &Caps) -> Vec<Variant> {
    let wrap = |kinds: Vec<Kind>| kinds.into_iter().map(Variant).collect();
    match geometry {
        Geometry::Point(p) => wrap(
            pointwise::variants(p, caps)
                .into_iter()
                .map(Kind::Pointwise)
                .collect(),
        ),
        Geometry::Rows(r) => wrap(
            rows::variants(r, caps)
                .into_iter()
                .map(Kind::Rows)
                .collect(),
        ),
        Geometry::Pairs(p) => wrap(
            pairs::variants(p, caps)
                .into_iter()
                .map(Kind::Pairs)
                .collect(),
        ),
        Geometry::Dice(d) => wrap(
            dice::variants(d, caps)
                .into_iter()
                .map(Kind::Dice)
                .collect(),
        ),
    }
}

/// (rows, row length) of a shape, as the tuner buckets it: what decides how
/// a family spreads its work over threads.
pub(crate) fn extent(geometry: &Geometry<'_>) -> (usize, usize) {
    match geometry {
        Geometry::Point(p) => (p.n, 1),
        Geometry::Rows(r) => (r.rows, r.classes),
        Geometry::Pairs(p) => (p.rows, p.dim),
        Geometry::Dice(d) => (d.batch * d.inner, d.classes),
    }
}

/// A comma-separated list of variant names, at most one per family, as
/// `WGPU_LOSS_VARIANT` holds it (empty entries are skipped).
pub(crate) fn parse_list(list: &str) -> Result<Vec<Variant>> {
    let mut out: Vec<Variant> = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let v: Variant = name.parse()?;
        if let Some(other) = out.iter().find(|o| o.family() == v.family()) {
            return Err(Error::Variant {
                name: name.to_string(),
                problem: format!(
                    "`{other}` is already forced for the {} family: name one variant per family",
                    v.family()
                ),
            });
        }
        out.push(v);
    }
    Ok(out)
}

/// The variants `WGPU_LOSS_VARIANT` forces; an error for a name it cannot
/// read, which every evaluator of the context then reports.
pub(crate) fn from_env() -> Result<Vec<Variant>> {
    match std::env::var("WGPU_LOSS_VARIANT") {
        Ok(list) => parse_list(&list).map_err(|e| match e {
            Error::Variant { name, problem } => Error::Variant {
                name,
                problem: format!("{problem} (from WGPU_LOSS_VARIANT)"),
            },
            e => e,
        }),
        Err(_) => Ok(vec![]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_kebab_case_and_round_trip() {
        let all = Variant::all();
        for (i, v) in all.iter().enumerate() {
            let name = v.name();
            assert!(
                !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{name}"
            );
            assert_eq!(Variant::from_name(name), Some(*v));
            assert_eq!(name.parse::<Variant>().unwrap(), *v);
            assert!(
                all[i + 1..].iter().all(|o| o.name() != name),
                "{name} twice"
            );
        }
        assert!(matches!(
            "pair-nowhere".parse::<Variant>(),
            Err(Error::Variant { .. })
        ));
    }

    #[test]
    fn a_list_forces_one_variant_per_family() {
        let list = parse_list(" pair-workgroup, ,point-vec4").unwrap();
        assert_eq!(
            list.iter().map(|v| v.name()).collect::<Vec<_>>(),
            ["pair-workgroup", "point-vec4"]
        );
        assert!(parse_list("").unwrap().is_empty());
        match parse_list("pair-workgroup,pair-thread") {
            Err(Error::Variant { name, problem }) => {
                assert_eq!(name, "pair-thread");
                assert!(problem.contains("pair-workgroup"), "{problem}");
            }
            other => panic!("{other:?}"),
        }
    }
}
