//! Graph models in model files (schema version 2, docs/SCHEMA.md "model: graph models"): root
//! attribute `model_kind = "graph"`, one group `terms/<t>` per term with its network, and the
//! training graph in group `graph`.

use super::{Boundary, ClosedTerm, FeatureSet, GraphModel, GraphTerm, MassScale};
use crate::density::Mlp;
use crate::io::h5::{guard, refuse_invalid, Ctx, Out, Problem};
use crate::io::{AttrValue, GraphData, Kind, TrainingData};
use crate::{Error, Result};
use ndarray::{Array1, Array2};
use std::path::Path;

/// `model_kind` of a graph model.
pub const GRAPH_MODEL_KIND: &str = "graph";

/// A network in group `g` (`layer_sizes`, `layers/i/{weight,bias}`, `input_shift`, `input_scale`).
pub(crate) fn write_net(out: &Out, g: &str, net: &Mlp) -> Result<()> {
    let sizes: Array1<i64> = net.sizes.iter().map(|s| *s as i64).collect();
    out.i64(&format!("{g}/layer_sizes"), &sizes)?;
    out.group(&format!("{g}/layers"))?;
    for l in 0..net.weights.len() {
        let lg = format!("{g}/layers/{l}");
        out.group(&lg)?;
        let w = Array2::from_shape_vec((net.sizes[l + 1], net.sizes[l]), net.weights[l].clone())
            .map_err(|e| Error::input(format!("layer {l}: {e}")))?;
        out.f64(&format!("{lg}/weight"), &w)?;
        out.f64(&format!("{lg}/bias"), &Array1::from(net.biases[l].clone()))?;
    }
    out.f64(
        &format!("{g}/input_shift"),
        &Array1::from(net.input_shift.clone()),
    )?;
    out.f64(
        &format!("{g}/input_scale"),
        &Array1::from(net.input_scale.clone()),
    )?;
    Ok(())
}

fn read_net(ctx: &mut Ctx, g: &str) -> Option<Mlp> {
    read_net_out(ctx, g, Some(1))
}

/// The network of group `g` (see [`write_net`]) with `out` outputs (`None`: any width ≥ 1).
pub(crate) fn read_net_out(ctx: &mut Ctx, g: &str, out: Option<usize>) -> Option<Mlp> {
    let sizes = ctx.i64_1d(&format!("{g}/layer_sizes"), true)?;
    if let Some((i, x)) = sizes.iter().enumerate().find(|(_, x)| **x < 1) {
        ctx.problem(
            format!("/{g}/layer_sizes"),
            format!("value at index [{i}] is {x}, expected a layer width >= 1"),
        );
        return None;
    }
    let sizes: Vec<usize> = sizes.iter().map(|x| *x as usize).collect();
    if sizes.len() < 3 || out.is_some_and(|o| *sizes.last().unwrap() != o) {
        ctx.problem(
            format!("/{g}/layer_sizes"),
            format!(
                "{sizes:?}: expected input, at least one hidden layer, and {} output(s)",
                out.map_or("the".to_string(), |o| o.to_string())
            ),
        );
        return None;
    }
    let mut weights = vec![];
    let mut biases = vec![];
    for l in 0..sizes.len() - 1 {
        let lg = format!("{g}/layers/{l}");
        let w = ctx.f64_2d(&format!("{lg}/weight"), true)?;
        let b = ctx.f64_1d(&format!("{lg}/bias"), true)?;
        if w.dim() != (sizes[l + 1], sizes[l]) || b.len() != sizes[l + 1] {
            ctx.problem(
                format!("/{lg}"),
                format!(
                    "weight {:?} and bias ({},) do not fit layer_sizes {sizes:?} (expected ({}, {}) and ({},))",
                    w.dim(),
                    b.len(),
                    sizes[l + 1],
                    sizes[l],
                    sizes[l + 1]
                ),
            );
            return None;
        }
        weights.push(w.iter().copied().collect());
        biases.push(b.to_vec());
    }
    let input_shift = ctx.f64_1d(&format!("{g}/input_shift"), true)?.to_vec();
    let input_scale = ctx.f64_1d(&format!("{g}/input_scale"), true)?.to_vec();
    let net = Mlp {
        sizes,
        weights,
        biases,
        input_shift,
        input_scale,
    };
    let valid = if net.sizes.last() == Some(&1) {
        net.validate()
    } else {
        crate::train::baselines::validate_any_output(&net)
    };
    if let Err(e) = valid {
        ctx.problem(format!("/{g}"), e.to_string());
        return None;
    }
    Some(net)
}

fn write_graph(out: &Out, g: &GraphData) -> Result<()> {
    out.group("graph")?;
    out.attr("graph", "n_nodes", &AttrValue::Int(g.n_nodes as i64))?;
    out.attr("graph", "dof", &AttrValue::Int(g.dof as i64))?;
    let edges = Array2::from_shape_fn((g.edges.len(), 2), |(i, j)| g.edges[i][j] as i64);
    out.i64("graph/edges", &edges)?;
    for (name, a) in [
        ("positions", &g.positions),
        ("node_features", &g.node_features),
        ("edge_features", &g.edge_features),
    ] {
        if let Some(a) = a {
            out.f64(&format!("graph/{name}"), a)?;
        }
    }
    if let Some(b) = &g.boundary {
        let v: Vec<u8> = b.iter().map(|x| u8::from(*x)).collect();
        out.u8_1d("graph/boundary", &v)?;
    }
    if let Some(s) = &g.sites {
        out.i64("graph/sites", &s.mapv(|x| x as i64))?;
    }
    if let Some(t) = &g.triangles {
        let a = Array2::from_shape_fn((t.len(), 3), |(i, j)| t[i][j] as i64);
        out.i64("graph/triangles", &a)?;
    }
    Ok(())
}

fn to_usize2(ctx: &mut Ctx, name: &str, a: Array2<i64>) -> Option<Array2<usize>> {
    if let Some(((i, j), x)) = a.indexed_iter().find(|(_, x)| **x < 0) {
        ctx.problem(
            format!("/{name}"),
            format!("node index {x} at [{i}, {j}] is negative"),
        );
        return None;
    }
    Some(a.mapv(|x| x as usize))
}

fn read_graph(ctx: &mut Ctx) -> Option<GraphData> {
    ctx.group("graph", true)?;
    let n_nodes = ctx.attr_usize("graph", "n_nodes", true);
    let dof = ctx.attr_usize("graph", "dof", true);
    let edges = ctx.i64_2d("graph/edges", true);
    let positions = ctx.f64_2d("graph/positions", false);
    let node_features = ctx.f64_2d("graph/node_features", false);
    let edge_features = ctx.f64_2d("graph/edge_features", false);
    let boundary = ctx.flags_1d("graph/boundary", false);
    let sites = ctx.i64_2d("graph/sites", false);
    let triangles = ctx.i64_2d("graph/triangles", false);
    let edges = to_usize2(ctx, "graph/edges", edges?)?;
    if edges.ncols() != 2 {
        ctx.problem(
            "/graph/edges",
            format!("has shape {:?}, expected (E, 2)", edges.shape()),
        );
        return None;
    }
    let sites = match sites {
        Some(s) => Some(to_usize2(ctx, "graph/sites", s)?),
        None => None,
    };
    let triangles = match triangles {
        Some(t) if t.ncols() == 3 => Some(
            to_usize2(ctx, "graph/triangles", t)?
                .rows()
                .into_iter()
                .map(|r| [r[0], r[1], r[2]])
                .collect(),
        ),
        Some(t) => {
            ctx.problem(
                "/graph/triangles",
                format!("has shape {:?}, expected (T, 3)", t.shape()),
            );
            return None;
        }
        None => None,
    };
    let g = GraphData {
        n_nodes: n_nodes?,
        dof: dof?,
        edges: edges.rows().into_iter().map(|r| [r[0], r[1]]).collect(),
        positions,
        node_features,
        edge_features,
        boundary,
        sites,
        triangles,
        attrs: Default::default(),
    };
    let problems: Vec<Problem> = g
        .problems()
        .into_iter()
        .map(|p| Problem {
            location: format!("/graph{}", p.location),
            msg: p.msg,
        })
        .collect();
    ctx.accept(g, problems)
}

impl GraphModel {
    /// Write the model file (schema version 2; atomically, an existing file only with `force`).
    pub fn save(&self, path: &Path, training: Option<&TrainingData>, force: bool) -> Result<()> {
        let problems: Vec<Problem> = self
            .terms
            .iter()
            .enumerate()
            .filter_map(|(t, term)| {
                term.net()?.validate().err().map(|e| Problem {
                    location: format!("/terms/{t}"),
                    msg: e.to_string(),
                })
            })
            .collect();
        refuse_invalid(path, problems)?;
        guard(path, || {
            let out = Out::create(path, force, Kind::Model)?;
            let s = |v: &str| AttrValue::Str(v.to_string());
            out.attr("/", "model_kind", &s(GRAPH_MODEL_KIND))?;
            out.attr("/", "activation", &s("softplus"))?;
            out.attr("/", "dof", &AttrValue::Int(self.dof as i64))?;
            out.attr("/", "features", &s(self.features.as_str()))?;
            out.attr("/", "boundary", &s(self.boundary.as_str()))?;
            if let Some(p) = self.q_period {
                out.attr("/", "q_period", &AttrValue::Float(p))?;
            }
            out.attr("/", "n_terms", &AttrValue::Int(self.terms.len() as i64))?;
            if !self.system.is_empty() {
                out.attr("/", "system", &s(&self.system))?;
            }
            out.group("terms")?;
            for (t, term) in self.terms.iter().enumerate() {
                let g = format!("terms/{t}");
                out.group(&g)?;
                out.attr(&g, "kind", &s(term.kind()))?;
                if let GraphTerm::Kinetic {
                    scale, n_features, ..
                } = term
                {
                    out.attr(&g, "mass_scale", &s(scale.as_str()))?;
                    out.attr(&g, "n_features", &AttrValue::Int(*n_features as i64))?;
                }
                match term {
                    GraphTerm::Closed(c) => {
                        out.attr(&g, "name", &s(c.name()))?;
                        for (p, x) in c.params() {
                            out.attr(&g, p, &AttrValue::Float(x))?;
                        }
                    }
                    _ => {
                        if let Some(net) = term.net() {
                            write_net(&out, &g, net)?;
                        }
                    }
                }
            }
            write_graph(&out, &self.graph)?;
            if let Some(d) = &self.dissipation {
                write_dissipation(&out, d)?;
            }
            if let Some(b) = &self.input_map {
                write_input_map(&out, b)?;
            }
            if let Some(t) = training {
                out.group("training")?;
                out.attr_u64("training", "seed", t.seed)?;
                out.attr("training", "data_file", &s(&t.data_file))?;
                out.attr("training", "epochs", &AttrValue::Int(t.epochs as i64))?;
                out.f64("training/loss_history", &t.loss_history)?;
                out.f64("training/val_loss_history", &t.val_loss_history)?;
                out.extra_attrs("training", &t.attrs, &["seed", "data_file", "epochs"])?;
            }
            out.commit().map(|_| ())
        })
    }
}

/// True when an open model file holds a graph model (`model_kind = "graph"`).
pub(crate) fn is_graph_model(ctx: &mut Ctx) -> bool {
    ctx.exists("terms") || {
        let before = ctx.problems.len();
        let k = ctx.attr_str("/", "model_kind", false);
        ctx.problems.truncate(before);
        k.as_deref() == Some(GRAPH_MODEL_KIND)
    }
}

/// Read a graph model from an open file, recording every problem (used by `lgn info` too).
pub(crate) fn read_ctx(ctx: &mut Ctx) -> Option<GraphModel> {
    ctx.check_kind(Kind::Model);
    let kind = ctx.attr_str("/", "model_kind", true)?;
    if kind != GRAPH_MODEL_KIND {
        ctx.problem("/@model_kind", format!("'{kind}' is not a graph model"));
        return None;
    }
    if let Some(a) = ctx.attr_str("/", "activation", true) {
        if a != "softplus" {
            ctx.problem(
                "/@activation",
                format!("'{a}' is not supported (lgn uses softplus)"),
            );
        }
    }
    let dof = ctx.attr_usize("/", "dof", true);
    let features = match ctx.attr_str("/", "features", true) {
        Some(f) => {
            let x = FeatureSet::parse(&f);
            if x.is_none() {
                ctx.problem("/@features", format!("'{f}' is not one of graph, mesh"));
            }
            x
        }
        None => None,
    };
    let boundary = match ctx.attr_str("/", "boundary", true) {
        Some(b) => {
            let x = Boundary::parse(&b);
            if x.is_none() {
                ctx.problem("/@boundary", format!("'{b}' is not one of free, fixed"));
            }
            x
        }
        None => None,
    };
    let system = ctx.attr_str("/", "system", false).unwrap_or_default();
    let n_terms = ctx.attr_usize("/", "n_terms", true)?;
    if n_terms == 0 || n_terms > 64 {
        ctx.problem("/@n_terms", format!("{n_terms} terms; expected 1 to 64"));
        return None;
    }
    let mut terms = vec![];
    for t in 0..n_terms {
        let g = format!("terms/{t}");
        ctx.group(&g, true)?;
        let kind = ctx.attr_str(&g, "kind", true)?;
        if kind == "closed" {
            let name = ctx.attr_str(&g, "name", true)?;
            let mut float = |p: &str| match ctx.attr(&g, p, false)? {
                AttrValue::Float(x) => Some(x),
                AttrValue::Int(i) => Some(i as f64),
                _ => None,
            };
            match ClosedTerm::from_name(&name, &mut float) {
                Ok(c) => terms.push(GraphTerm::Closed(c)),
                Err(e) => {
                    let msg = e.to_string();
                    let msg = msg.strip_prefix("invalid input: ").unwrap_or(&msg);
                    ctx.problem(format!("/{g}"), msg.to_string());
                    return None;
                }
            }
            continue;
        }
        let net = read_net(ctx, &g)?;
        let term = match kind.as_str() {
            "node_kinetic" => {
                let scale = ctx.attr_str(&g, "mass_scale", true)?;
                let Some(scale) = MassScale::parse(&scale) else {
                    ctx.problem(
                        format!("/{g}@mass_scale"),
                        format!("'{scale}' is not one of one, lumped_area"),
                    );
                    return None;
                };
                let n_features = ctx.attr_usize(&g, "n_features", true)?;
                if net.sizes[0] != n_features.max(1) {
                    ctx.problem(
                        format!("/{g}/layer_sizes"),
                        format!(
                            "the mass network takes {} inputs but n_features = {n_features}",
                            net.sizes[0]
                        ),
                    );
                    return None;
                }
                GraphTerm::Kinetic {
                    net,
                    scale,
                    n_features,
                }
            }
            "edge_potential" => GraphTerm::EdgePotential(net),
            "edge_distance" => GraphTerm::EdgeDistance(net),
            "node_potential" => GraphTerm::NodePotential(net),
            "sites" => GraphTerm::Sites(net),
            "stencil3" => GraphTerm::Stencil(net),
            k => {
                ctx.problem(
                    format!("/{g}@kind"),
                    format!(
                        "'{k}' is not one of node_kinetic, edge_potential, edge_distance, node_potential, sites, stencil3, closed"
                    ),
                );
                return None;
            }
        };
        terms.push(term);
    }
    let graph = read_graph(ctx)?;
    let (dof, features, boundary) = (dof?, features?, boundary?);
    if graph.dof != dof {
        ctx.problem(
            "/graph@dof",
            format!(
                "the training graph has dof {} but the model {dof}",
                graph.dof
            ),
        );
        return None;
    }
    let q_period = match ctx.attr("/", "q_period", false) {
        None => None,
        Some(AttrValue::Float(p)) if p.is_finite() && p > 0.0 => Some(p),
        Some(other) => {
            ctx.problem(
                "/@q_period",
                format!("is {other:?}, expected a positive finite float64 period"),
            );
            return None;
        }
    };
    let model = GraphModel {
        dof,
        features,
        boundary,
        q_period,
        terms,
        graph,
        system,
        dissipation: read_dissipation(ctx)?,
        input_map: read_input_map(ctx)?,
    };
    // Every network (and a learned input map) must fit the model's own graph.
    match model.own_graph().and_then(|g| {
        if let Some(b) = &model.input_map {
            b.check(&g)?;
        }
        model.dynamics(&g, crate::solve::SolverKind::Auto)
    }) {
        Ok(_) => Some(model),
        Err(e) => {
            ctx.problem(
                "/terms",
                format!("the networks do not fit the training graph: {e}"),
            );
            None
        }
    }
}

/// Read a graph model file.
pub fn load_graph_model(path: impl AsRef<Path>) -> Result<GraphModel> {
    Ctx::read_with(path.as_ref(), read_ctx)
}

/// Group `dissipation` (docs/SCHEMA.md, graph models): the learned dissipation term.
fn write_dissipation(out: &Out, d: &super::GraphDissipation) -> Result<()> {
    let g = "dissipation";
    out.group(g)?;
    out.attr(g, "kind", &AttrValue::Str(d.kind().as_str().to_string()))?;
    out.attr(
        g,
        "mass_scale",
        &AttrValue::Str(d.scale.as_str().to_string()),
    )?;
    out.attr(g, "q_input", &AttrValue::Int(i64::from(d.q_input)))?;
    out.attr(g, "n_features", &AttrValue::Int(d.n_features as i64))?;
    out.attr(
        g,
        "relative_to_mass",
        &AttrValue::Int(i64::from(d.relative_to_mass)),
    )?;
    write_net(out, g, &d.net)
}

/// The optional `dissipation` group: `Some(None)` when absent, `None` on a problem.
fn read_dissipation(ctx: &mut Ctx) -> Option<Option<super::GraphDissipation>> {
    let g = "dissipation";
    if !ctx.exists(g) {
        return Some(None);
    }
    let kind = ctx.attr_str(g, "kind", true)?;
    if !["linear", "learned"].contains(&kind.as_str()) {
        ctx.problem(
            "/dissipation@kind",
            format!("'{kind}' is not one of linear, learned"),
        );
        return None;
    }
    let scale = ctx.attr_str(g, "mass_scale", true)?;
    let Some(scale) = MassScale::parse(&scale) else {
        ctx.problem(
            "/dissipation@mass_scale",
            format!("'{scale}' is not one of one, lumped_area"),
        );
        return None;
    };
    let q_input = ctx.attr_usize(g, "q_input", true)? != 0;
    let n_features = ctx.attr_usize(g, "n_features", true)?;
    // Absent in files written before mass-proportional damping (docs/DESIGN.md §13.11).
    let relative_to_mass = if ctx.attr(g, "relative_to_mass", false).is_some() {
        ctx.attr_usize(g, "relative_to_mass", true)? != 0
    } else {
        false
    };
    let net = read_net(ctx, g)?;
    Some(Some(super::GraphDissipation {
        net,
        q_input,
        scale,
        n_features,
        relative_to_mass,
    }))
}

/// Group `input_map` (docs/SCHEMA.md, graph models): the learned input map B = s_i β.
fn write_input_map(out: &Out, b: &super::LearnedInputMap) -> Result<()> {
    let g = "input_map";
    out.group(g)?;
    out.attr(
        g,
        "mass_scale",
        &AttrValue::Str(b.scale.as_str().to_string()),
    )?;
    let rows = b.beta.len() / b.width;
    let beta = ndarray::Array2::from_shape_vec((rows, b.width), b.beta.clone())
        .map_err(|e| crate::Error::input(format!("input map: {e}")))?;
    out.f64("input_map/beta", &beta)
}

/// The optional `input_map` group: `Some(None)` when absent, `None` on a problem.
fn read_input_map(ctx: &mut Ctx) -> Option<Option<super::LearnedInputMap>> {
    let g = "input_map";
    if !ctx.exists(g) {
        return Some(None);
    }
    let scale = ctx.attr_str(g, "mass_scale", true)?;
    let Some(scale) = MassScale::parse(&scale) else {
        ctx.problem(
            "/input_map@mass_scale",
            format!("'{scale}' is not one of one, lumped_area"),
        );
        return None;
    };
    let beta = ctx.f64_2d("input_map/beta", true)?;
    if beta.ncols() == 0 || beta.nrows() == 0 {
        ctx.problem(
            "/input_map/beta",
            format!(
                "has shape {:?}: it needs one row per coordinate and one column per input",
                beta.dim()
            ),
        );
        return None;
    }
    Some(Some(super::LearnedInputMap {
        width: beta.ncols(),
        beta: beta.iter().copied().collect(),
        scale,
    }))
}
