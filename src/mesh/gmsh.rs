//! Gmsh MSH import (ASCII 4.1 and 2.2) and export (ASCII 4.1 and 2.2).
//!
//! Import keeps the 3-node triangles (element type 2) and skips every other element type,
//! reporting what was skipped in the notes. Node tags may be arbitrary (non-contiguous); they are
//! mapped to indices and nodes not used by any triangle (geometry points, nodes of skipped
//! elements) are dropped. The mesh must lie in a plane z = const. Every malformed input gives an
//! [`Error::File`] naming the file and, where there is one, the line; the reader never panics.

use super::{is_degenerate, TriMesh};
use crate::error::{Error, Result};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Everything [`read_msh_detailed`] found in a file.
#[derive(Clone, Debug)]
pub struct MshImport {
    /// The triangle mesh (unused nodes dropped, triangles counter-clockwise).
    pub mesh: TriMesh,
    /// Gmsh node tag of each mesh node.
    pub node_tags: Vec<u64>,
    /// Gmsh element tag of each mesh triangle.
    pub triangle_tags: Vec<u64>,
    /// Format version as written in `$MeshFormat` (e.g. "4.1", "2.2").
    pub version: String,
    /// Human-readable notes: skipped element types, dropped nodes, reoriented triangles.
    pub notes: Vec<String>,
}

/// Read a Gmsh MSH 4.1 or 2.2 ASCII file: the 3-node triangles, plus notes on what was skipped
/// or repaired (skipped element types, dropped unused nodes, reoriented triangles).
pub fn read_msh(path: impl AsRef<Path>) -> Result<(TriMesh, Vec<String>)> {
    read_msh_detailed(path).map(|m| (m.mesh, m.notes))
}

/// Like [`read_msh`], also returning node/element tags and the format version.
pub fn read_msh_detailed(path: impl AsRef<Path>) -> Result<MshImport> {
    let path = path.as_ref();
    // A missing file is reported by the read below ("cannot read: ..."); anything that exists
    // must be a regular file of a size that fits.
    let len = if path.exists() {
        crate::limits::check_input_file(path)?
    } else {
        0
    };
    // Parsing holds the text plus its nodes and triangles: about 4× the file.
    crate::limits::check_alloc("mesh file of that many bytes", len as u128, 4)
        .map_err(|e| Error::file(path, e.to_string()))?;
    let bytes = std::fs::read(path).map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    parse_msh(&bytes, path)
}

/// Parse the bytes of an MSH file; `path` is only used in error messages.
pub fn parse_msh(bytes: &[u8], path: &Path) -> Result<MshImport> {
    Parser::new(bytes, path)?.run()
}

/// Known Gmsh element types: (type, number of nodes, name).
const ELEMENT_TYPES: &[(u32, usize, &str)] = &[
    (1, 2, "2-node line"),
    (2, 3, "3-node triangle"),
    (3, 4, "4-node quadrangle"),
    (4, 4, "4-node tetrahedron"),
    (5, 8, "8-node hexahedron"),
    (6, 6, "6-node prism"),
    (7, 5, "5-node pyramid"),
    (8, 3, "3-node second-order line"),
    (9, 6, "6-node second-order triangle"),
    (10, 9, "9-node second-order quadrangle"),
    (11, 10, "10-node second-order tetrahedron"),
    (12, 27, "27-node second-order hexahedron"),
    (13, 18, "18-node second-order prism"),
    (14, 14, "14-node second-order pyramid"),
    (15, 1, "1-node point"),
    (16, 8, "8-node second-order quadrangle"),
    (17, 20, "20-node second-order hexahedron"),
    (18, 15, "15-node second-order prism"),
    (19, 13, "13-node second-order pyramid"),
    (20, 9, "9-node third-order incomplete triangle"),
    (21, 10, "10-node third-order triangle"),
    (22, 12, "12-node fourth-order incomplete triangle"),
    (23, 15, "15-node fourth-order triangle"),
    (24, 15, "15-node fifth-order incomplete triangle"),
    (25, 21, "21-node fifth-order triangle"),
    (26, 4, "4-node third-order line"),
    (27, 5, "5-node fourth-order line"),
    (28, 6, "6-node fifth-order line"),
    (29, 20, "20-node third-order tetrahedron"),
    (30, 35, "35-node fourth-order tetrahedron"),
    (31, 56, "56-node fifth-order tetrahedron"),
    (92, 64, "64-node third-order hexahedron"),
    (93, 125, "125-node fourth-order hexahedron"),
];

fn element_info(t: u32) -> Option<(usize, &'static str)> {
    ELEMENT_TYPES
        .iter()
        .find(|e| e.0 == t)
        .map(|&(_, n, name)| (n, name))
}

/// Higher-order triangle types: their corners are the first three nodes.
fn is_high_order_triangle(t: u32) -> bool {
    matches!(t, 9 | 20 | 21 | 22 | 23 | 24 | 25)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Version {
    V2,
    V41,
}

struct Section {
    name: String,
    /// 0-based index of the `$Name` line.
    start: usize,
    /// 0-based index of the `$EndName` line.
    end: usize,
}

struct Parser<'a> {
    path: &'a Path,
    lines: Vec<&'a str>,
    sections: Vec<Section>,
    version: Version,
    version_str: String,
    notes: Vec<String>,
}

/// Token cursor over the body of one section, tracking line numbers.
struct Cursor<'a, 'p> {
    path: &'p Path,
    section: String,
    lines: &'p [&'a str],
    /// 0-based file index of `lines[0]`.
    base: usize,
    li: usize,
    rest: &'a str,
    /// 1-based file line of the last token returned (or the section header).
    line: usize,
}

impl<'a, 'p> Cursor<'a, 'p> {
    fn new(p: &'p Parser<'a>, s: &Section) -> Self {
        let lines = &p.lines[s.start + 1..s.end];
        Cursor {
            path: p.path,
            section: s.name.clone(),
            lines,
            base: s.start + 1,
            li: 0,
            rest: lines.first().copied().unwrap_or(""),
            line: s.start + 1,
        }
    }

    fn err(&self, msg: impl Into<String>) -> Error {
        Error::file_at(self.path, format!("line {}", self.line), msg)
    }

    fn next(&mut self, what: &str) -> Result<&'a str> {
        loop {
            let s = self.rest.trim_start();
            if s.is_empty() {
                self.li += 1;
                if self.li >= self.lines.len() {
                    let end_line = self.base + self.lines.len() + 1;
                    return Err(Error::file_at(
                        self.path,
                        format!("line {end_line}"),
                        format!(
                            "${} section ends before {what} (truncated, or counts in the section \
                             header do not match its data)",
                            self.section
                        ),
                    ));
                }
                self.rest = self.lines[self.li];
                continue;
            }
            let end = s.find(char::is_whitespace).unwrap_or(s.len());
            self.rest = &s[end..];
            self.line = self.base + self.li + 1;
            return Ok(&s[..end]);
        }
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        let t = self.next(what)?;
        t.parse::<u64>().map_err(|_| {
            self.err(format!(
                "expected {what} (a non-negative integer), found '{}'",
                clip(t)
            ))
        })
    }

    fn i64(&mut self, what: &str) -> Result<i64> {
        let t = self.next(what)?;
        t.parse::<i64>()
            .map_err(|_| self.err(format!("expected {what} (an integer), found '{}'", clip(t))))
    }

    fn count(&mut self, what: &str) -> Result<usize> {
        let v = self.u64(what)?;
        usize::try_from(v).map_err(|_| self.err(format!("{what} = {v} is too large")))
    }

    fn f64(&mut self, what: &str) -> Result<f64> {
        let t = self.next(what)?;
        match t.parse::<f64>() {
            Ok(x) if x.is_finite() => Ok(x),
            Ok(_) => Err(self.err(format!("{what} is not finite: '{}'", clip(t)))),
            Err(_) => Err(self.err(format!("expected {what} (a number), found '{}'", clip(t)))),
        }
    }

    /// Remaining tokens on the line of the last token returned.
    fn rest_of_line(&mut self) -> usize {
        let n = self.rest.split_whitespace().count();
        self.rest = "";
        n
    }

    /// Error if anything but whitespace is left in the section.
    fn finish(&mut self) -> Result<()> {
        loop {
            if let Some(t) = self.rest.split_whitespace().next() {
                self.line = self.base + self.li + 1;
                return Err(self.err(format!(
                    "unexpected data '{}' after the declared content of ${} (counts in the \
                     section header too small?)",
                    clip(t),
                    self.section
                )));
            }
            self.li += 1;
            if self.li >= self.lines.len() {
                return Ok(());
            }
            self.rest = self.lines[self.li];
        }
    }
}

/// At most 40 characters of a token, for error messages.
fn clip(t: &str) -> String {
    let mut s: String = t.chars().take(40).collect();
    if t.chars().count() > 40 {
        s.push('…');
    }
    s
}

/// Capacity hint that never trusts a count read from the file.
fn cap(n: usize) -> usize {
    n.min(1 << 16)
}

struct RawNodes {
    tags: Vec<u64>,
    xyz: Vec<[f64; 3]>,
    index: HashMap<u64, usize>,
}

struct RawTriangles {
    nodes: Vec<[usize; 3]>,
    tags: Vec<u64>,
    lines: Vec<usize>,
    skipped: BTreeMap<u32, usize>,
}

impl<'a> Parser<'a> {
    fn new(bytes: &'a [u8], path: &'a Path) -> Result<Parser<'a>> {
        // The header is read from a lossy view first, so a binary file gets a precise message.
        let head = String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]);
        let mut head_lines = head
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim_start_matches('\u{feff}').trim()))
            .filter(|(_, l)| !l.is_empty());
        match head_lines.next() {
            Some((_, "$MeshFormat")) => {}
            Some((ln, _)) => {
                return Err(Error::file_at(
                    path,
                    format!("line {ln}"),
                    "not a Gmsh MSH file: it must start with $MeshFormat (MSH 1.0 files, which \
                     start with $NOD, are not supported)",
                ))
            }
            None => return Err(Error::file(path, "empty file: not a Gmsh MSH file")),
        }
        let (ln, fmt) = head_lines.next().ok_or_else(|| {
            Error::file(path, "$MeshFormat section is truncated: no version line")
        })?;
        let at = format!("line {ln}");
        let tok: Vec<&str> = fmt.split_whitespace().collect();
        if tok.len() < 3 || tok[0].starts_with('$') {
            return Err(Error::file_at(
                path,
                at,
                format!(
                    "malformed $MeshFormat line '{}': expected 'version file-type data-size'",
                    clip(fmt)
                ),
            ));
        }
        match tok[1] {
            "0" => {}
            "1" => {
                return Err(Error::file_at(
                    path,
                    at,
                    "binary MSH is not supported, re-export as ASCII (e.g. gmsh -save_all \
                     -format msh41 -bin 0, or Mesh.Binary = 0)",
                ))
            }
            other => {
                return Err(Error::file_at(
                    path,
                    at,
                    format!(
                        "invalid file-type '{}' in $MeshFormat (0 = ASCII, 1 = binary)",
                        clip(other)
                    ),
                ))
            }
        }
        let version = match tok[0] {
            "4.1" => Version::V41,
            "2.2" | "2.1" | "2.0" | "2" => Version::V2,
            "4" | "4.0" => {
                return Err(Error::file_at(
                    path,
                    at,
                    "MSH version 4.0 is not supported: re-export as MSH 4.1 or 2.2 ASCII",
                ))
            }
            other => {
                return Err(Error::file_at(
                    path,
                    at,
                    format!(
                        "unknown MSH version '{}': supported versions are 4.1 and 2.2 (ASCII)",
                        clip(other)
                    ),
                ))
            }
        };
        let version_str = tok[0].to_string();
        let text = std::str::from_utf8(bytes).map_err(|e| {
            let line = 1 + bytes[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            Error::file_at(
                path,
                format!("line {line}"),
                "invalid (non-text) byte: not an ASCII MSH file",
            )
        })?;
        let lines: Vec<&str> = text.lines().collect();
        let mut sections = Vec::new();
        let mut i = 0;
        while i < lines.len() {
            let l = lines[i].trim_start_matches('\u{feff}').trim();
            if l.is_empty() {
                i += 1;
                continue;
            }
            let Some(name) = l.strip_prefix('$') else {
                return Err(Error::file_at(
                    path,
                    format!("line {}", i + 1),
                    format!("unexpected text outside any section: '{}'", clip(l)),
                ));
            };
            if name.is_empty() || name.starts_with("End") {
                return Err(Error::file_at(
                    path,
                    format!("line {}", i + 1),
                    format!("unexpected '{}' outside any section", clip(l)),
                ));
            }
            let marker = format!("$End{name}");
            let Some(end) = (i + 1..lines.len()).find(|&k| lines[k].trim() == marker) else {
                return Err(Error::file_at(
                    path,
                    format!("line {}", i + 1),
                    format!(
                        "${} section is not closed: no {} before the end of the file (line {}); \
                         file truncated?",
                        clip(name),
                        clip(&marker),
                        lines.len()
                    ),
                ));
            };
            sections.push(Section {
                name: name.to_string(),
                start: i,
                end,
            });
            i = end + 1;
        }
        Ok(Parser {
            path,
            lines,
            sections,
            version,
            version_str,
            notes: Vec::new(),
        })
    }

    fn find(&self, name: &str) -> Result<Option<&Section>> {
        let mut found = self.sections.iter().filter(|s| s.name == name);
        let first = found.next();
        if let Some(second) = found.next() {
            return Err(Error::file_at(
                self.path,
                format!("line {}", second.start + 1),
                format!("second ${name} section (only one is allowed)"),
            ));
        }
        Ok(first)
    }

    fn run(mut self) -> Result<MshImport> {
        let path = self.path;
        if self.version_str != "2.2" && self.version == Version::V2 {
            self.notes.push(format!(
                "MSH version {} read with the MSH 2.2 reader",
                self.version_str
            ));
        }
        let nodes_sec = self.find("Nodes")?.ok_or_else(|| {
            Error::file(path, "no $Nodes section: the file contains no mesh nodes")
        })?;
        let elems_sec = self.find("Elements")?.ok_or_else(|| {
            Error::file(
                path,
                "no $Elements section: the file contains no mesh elements",
            )
        })?;
        let elems_line = elems_sec.start + 1;
        let nodes = match self.version {
            Version::V41 => self.nodes41(&mut Cursor::new(&self, nodes_sec))?,
            Version::V2 => self.nodes22(&mut Cursor::new(&self, nodes_sec))?,
        };
        let tris = self.elements(&mut Cursor::new(&self, elems_sec), &nodes)?;

        let skipped_desc = |skipped: &BTreeMap<u32, usize>| -> Vec<String> {
            skipped
                .iter()
                .map(|(&t, &c)| match element_info(t) {
                    Some((_, name)) => format!("{c} × type {t} ({name})"),
                    None => format!("{c} × type {t} (unknown type)"),
                })
                .collect()
        };
        if tris.nodes.is_empty() {
            let mut msg = "no 3-node triangles (element type 2) in $Elements".to_string();
            if tris.skipped.is_empty() {
                msg.push_str(": the section is empty");
            } else {
                msg.push_str(&format!(
                    "; found only {}",
                    skipped_desc(&tris.skipped).join(", ")
                ));
            }
            if tris.skipped.keys().any(|&t| is_high_order_triangle(t)) {
                msg.push_str("; re-mesh with first-order elements (Mesh.ElementOrder = 1)");
            }
            return Err(Error::file_at(path, format!("line {elems_line}"), msg));
        }
        for d in skipped_desc(&tris.skipped) {
            self.notes.push(format!("skipped {d} elements"));
        }
        if tris.skipped.keys().any(|&t| is_high_order_triangle(t)) {
            self.notes.push(
                "higher-order triangles were skipped, not converted: only 3-node triangles are \
                 used"
                    .to_string(),
            );
        }

        // Planarity, over the nodes that triangles use.
        let mut used = vec![false; nodes.xyz.len()];
        for t in &tris.nodes {
            for &v in t {
                used[v] = true;
            }
        }
        let (mut zmin, mut zmax) = ((f64::INFINITY, 0), (f64::NEG_INFINITY, 0));
        let (mut lo, mut hi) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
        for (i, p) in nodes.xyz.iter().enumerate().filter(|(i, _)| used[*i]) {
            if p[2] < zmin.0 {
                zmin = (p[2], i);
            }
            if p[2] > zmax.0 {
                zmax = (p[2], i);
            }
            for d in 0..2 {
                lo[d] = lo[d].min(p[d]);
                hi[d] = hi[d].max(p[d]);
            }
        }
        let extent = (hi[0] - lo[0]).max(hi[1] - lo[1]);
        if zmax.0 - zmin.0 > 1e-9 * extent {
            return Err(Error::file(
                path,
                format!(
                    "mesh is not planar: z varies from {} (node {}) to {} (node {}); only 2-D \
                     meshes lying in a plane z = const are supported",
                    zmin.0, nodes.tags[zmin.1], zmax.0, nodes.tags[zmax.1]
                ),
            ));
        }
        if zmin.0 != 0.0 {
            self.notes.push(format!(
                "mesh lies in the plane z = {}; z is ignored",
                zmin.0
            ));
        }
        for (k, t) in tris.nodes.iter().enumerate() {
            let [p0, p1, p2] = t.map(|v| [nodes.xyz[v][0], nodes.xyz[v][1]]);
            if t[0] == t[1] || t[1] == t[2] || t[0] == t[2] || is_degenerate(p0, p1, p2) {
                return Err(Error::file_at(
                    path,
                    format!("line {}", tris.lines[k]),
                    format!(
                        "element {} is a degenerate triangle (zero area or repeated node)",
                        tris.tags[k]
                    ),
                ));
            }
        }

        let positions: Vec<[f64; 2]> = nodes.xyz.iter().map(|p| [p[0], p[1]]).collect();
        let (mesh, report) = TriMesh::from_parts(positions, tris.nodes).map_err(|e| {
            let m = match e {
                Error::Input(m) => m,
                other => other.to_string(),
            };
            Error::file(
                path,
                format!("invalid triangle mesh: {m} (triangles numbered from 0 in file order)"),
            )
        })?;
        if report.dropped_nodes > 0 {
            self.notes.push(format!(
                "dropped {} node(s) not used by any triangle (geometry points or nodes of \
                 skipped elements); nodes renumbered",
                report.dropped_nodes
            ));
        }
        if report.flipped_triangles > 0 {
            self.notes.push(format!(
                "reoriented {} clockwise triangle(s) to counter-clockwise",
                report.flipped_triangles
            ));
        }
        let node_tags = report.kept.iter().map(|&i| nodes.tags[i]).collect();
        Ok(MshImport {
            mesh,
            node_tags,
            triangle_tags: tris.tags,
            version: self.version_str,
            notes: self.notes,
        })
    }

    fn add_node(c: &Cursor, nodes: &mut RawNodes, tag: u64) -> Result<()> {
        let idx = nodes.tags.len();
        if nodes.index.insert(tag, idx).is_some() {
            return Err(c.err(format!("node tag {tag} is defined twice")));
        }
        nodes.tags.push(tag);
        Ok(())
    }

    fn nodes22(&self, c: &mut Cursor) -> Result<RawNodes> {
        let n = c.count("the number of nodes")?;
        let mut nodes = RawNodes {
            tags: Vec::with_capacity(cap(n)),
            xyz: Vec::with_capacity(cap(n)),
            index: HashMap::with_capacity(cap(n)),
        };
        for _ in 0..n {
            let tag = c.u64("a node number")?;
            Self::add_node(c, &mut nodes, tag)?;
            let x = c.f64("the x coordinate")?;
            let y = c.f64("the y coordinate")?;
            let z = c.f64("the z coordinate")?;
            nodes.xyz.push([x, y, z]);
        }
        c.finish()?;
        Ok(nodes)
    }

    fn nodes41(&self, c: &mut Cursor) -> Result<RawNodes> {
        let blocks = c.count("numEntityBlocks")?;
        let n = c.count("numNodes")?;
        c.u64("minNodeTag")?;
        c.u64("maxNodeTag")?;
        let mut nodes = RawNodes {
            tags: Vec::with_capacity(cap(n)),
            xyz: Vec::with_capacity(cap(n)),
            index: HashMap::with_capacity(cap(n)),
        };
        for _ in 0..blocks {
            let dim = c.i64("entityDim")?;
            if !(0..=3).contains(&dim) {
                return Err(c.err(format!("entityDim must be 0, 1, 2 or 3, found {dim}")));
            }
            c.i64("entityTag")?;
            let parametric = c.u64("parametric (0 or 1)")?;
            if parametric > 1 {
                return Err(c.err(format!("parametric must be 0 or 1, found {parametric}")));
            }
            let k = c.count("numNodesInBlock")?;
            let first = nodes.tags.len();
            for _ in 0..k {
                let tag = c.u64("a node tag")?;
                Self::add_node(c, &mut nodes, tag)?;
            }
            let extra = if parametric == 1 { dim as usize } else { 0 };
            for _ in first..nodes.tags.len() {
                let x = c.f64("the x coordinate")?;
                let y = c.f64("the y coordinate")?;
                let z = c.f64("the z coordinate")?;
                for _ in 0..extra {
                    c.f64("a parametric coordinate")?;
                }
                nodes.xyz.push([x, y, z]);
            }
        }
        if nodes.tags.len() != n {
            return Err(c.err(format!(
                "$Nodes header declares {n} nodes but its blocks contain {}",
                nodes.tags.len()
            )));
        }
        c.finish()?;
        Ok(nodes)
    }

    fn elements(&self, c: &mut Cursor, nodes: &RawNodes) -> Result<RawTriangles> {
        let mut out = RawTriangles {
            nodes: Vec::new(),
            tags: Vec::new(),
            lines: Vec::new(),
            skipped: BTreeMap::new(),
        };
        match self.version {
            Version::V2 => {
                let n = c.count("the number of elements")?;
                for _ in 0..n {
                    let tag = c.u64("an element number")?;
                    let ty = Self::elem_type(c)?;
                    let ntags = c.count("the number of tags")?;
                    for _ in 0..ntags {
                        c.i64("an element tag")?;
                    }
                    Self::element(c, nodes, &mut out, tag, ty)?;
                }
            }
            Version::V41 => {
                let blocks = c.count("numEntityBlocks")?;
                let n = c.count("numElements")?;
                c.u64("minElementTag")?;
                c.u64("maxElementTag")?;
                let mut total = 0usize;
                for _ in 0..blocks {
                    let dim = c.i64("entityDim")?;
                    if !(0..=3).contains(&dim) {
                        return Err(c.err(format!("entityDim must be 0, 1, 2 or 3, found {dim}")));
                    }
                    c.i64("entityTag")?;
                    let ty = Self::elem_type(c)?;
                    let k = c.count("numElementsInBlock")?;
                    total = total.saturating_add(k);
                    for _ in 0..k {
                        let tag = c.u64("an element tag")?;
                        Self::element(c, nodes, &mut out, tag, ty)?;
                    }
                }
                if total != n {
                    return Err(c.err(format!(
                        "$Elements header declares {n} elements but its blocks contain {total}"
                    )));
                }
            }
        }
        c.finish()?;
        Ok(out)
    }

    fn elem_type(c: &mut Cursor) -> Result<u32> {
        let t = c.u64("an element type")?;
        u32::try_from(t).map_err(|_| c.err(format!("invalid element type {t}")))
    }

    /// Read the node list of one element (its tag and type already read).
    fn element(
        c: &mut Cursor,
        nodes: &RawNodes,
        out: &mut RawTriangles,
        tag: u64,
        ty: u32,
    ) -> Result<()> {
        if ty == 2 {
            let mut tri = [0usize; 3];
            for v in &mut tri {
                let nt = c.u64("a node tag of a triangle")?;
                *v = *nodes.index.get(&nt).ok_or_else(|| {
                    c.err(format!(
                        "element {tag} references node {nt}, which is not defined in $Nodes"
                    ))
                })?;
            }
            out.nodes.push(tri);
            out.tags.push(tag);
            out.lines.push(c.line);
            return Ok(());
        }
        match element_info(ty) {
            Some((nn, _)) => {
                for _ in 0..nn {
                    c.u64("a node tag")?;
                }
            }
            None => {
                // Unknown type: its node list is the rest of the element's line.
                if c.rest_of_line() == 0 {
                    return Err(c.err(format!(
                        "element {tag} has unknown type {ty} and no nodes on its line"
                    )));
                }
            }
        }
        *out.skipped.entry(ty).or_insert(0) += 1;
        Ok(())
    }
}

// --------------------------------------------------------------------------------------------
// Writers

/// Write `mesh` as ASCII MSH 4.1: one discrete surface entity (tag 1) in physical group 1
/// named "domain", node tags 1..=N in mesh order, triangle elements 1..=T (type 2).
pub fn write_msh41(mesh: &TriMesh, path: impl AsRef<Path>) -> Result<()> {
    write_with(path.as_ref(), |w| msh41(mesh, w))
}

/// Write `mesh` as ASCII MSH 2.2: node tags 1..=N, triangle elements 1..=T with physical tag 1
/// ("domain") and elementary tag 1.
pub fn write_msh22(mesh: &TriMesh, path: impl AsRef<Path>) -> Result<()> {
    write_with(path.as_ref(), |w| msh22(mesh, w))
}

fn write_with(
    path: &Path,
    f: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<()> {
    let err = |e: std::io::Error| Error::file(PathBuf::from(path), format!("cannot write: {e}"));
    let mut w = BufWriter::new(File::create(path).map_err(err)?);
    f(&mut w).map_err(err)?;
    w.flush().map_err(err)
}

/// Shortest text that parses back to exactly `x` (Rust's round-trip formatting), in exponent
/// form for very small or very large magnitudes.
fn num(x: f64) -> String {
    if x != 0.0 && (x.abs() < 1e-5 || x.abs() >= 1e15) {
        format!("{x:e}")
    } else {
        format!("{x}")
    }
}

/// MSH 4.1 text of `mesh` into any writer.
pub fn msh41(mesh: &TriMesh, w: &mut impl Write) -> std::io::Result<()> {
    let n = mesh.n_nodes();
    let t = mesh.n_triangles();
    let (lo, hi) = mesh.bounding_box();
    writeln!(w, "$MeshFormat\n4.1 0 8\n$EndMeshFormat")?;
    writeln!(w, "$PhysicalNames\n1\n2 1 \"domain\"\n$EndPhysicalNames")?;
    // numPoints numCurves numSurfaces numVolumes, then the surface:
    // tag minX minY minZ maxX maxY maxZ numPhysicalTags physicalTag numBoundingCurves
    writeln!(w, "$Entities\n0 0 1 0")?;
    writeln!(
        w,
        "1 {} {} 0 {} {} 0 1 1 0",
        num(lo[0]),
        num(lo[1]),
        num(hi[0]),
        num(hi[1])
    )?;
    writeln!(w, "$EndEntities")?;
    // numEntityBlocks numNodes minNodeTag maxNodeTag; entityDim entityTag parametric numNodes
    writeln!(w, "$Nodes\n1 {n} 1 {n}\n2 1 0 {n}")?;
    for i in 1..=n {
        writeln!(w, "{i}")?;
    }
    for p in &mesh.positions {
        writeln!(w, "{} {} 0", num(p[0]), num(p[1]))?;
    }
    writeln!(w, "$EndNodes")?;
    // numEntityBlocks numElements minElementTag maxElementTag; entityDim entityTag type count
    writeln!(w, "$Elements\n1 {t} 1 {t}\n2 1 2 {t}")?;
    for (k, tri) in mesh.triangles.iter().enumerate() {
        writeln!(w, "{} {} {} {}", k + 1, tri[0] + 1, tri[1] + 1, tri[2] + 1)?;
    }
    writeln!(w, "$EndElements")
}

/// MSH 2.2 text of `mesh` into any writer.
pub fn msh22(mesh: &TriMesh, w: &mut impl Write) -> std::io::Result<()> {
    writeln!(w, "$MeshFormat\n2.2 0 8\n$EndMeshFormat")?;
    writeln!(w, "$PhysicalNames\n1\n2 1 \"domain\"\n$EndPhysicalNames")?;
    writeln!(w, "$Nodes\n{}", mesh.n_nodes())?;
    for (i, p) in mesh.positions.iter().enumerate() {
        writeln!(w, "{} {} {} 0", i + 1, num(p[0]), num(p[1]))?;
    }
    writeln!(w, "$EndNodes")?;
    // elm-number elm-type number-of-tags physical elementary node-list
    writeln!(w, "$Elements\n{}", mesh.n_triangles())?;
    for (k, tri) in mesh.triangles.iter().enumerate() {
        writeln!(
            w,
            "{} 2 2 1 1 {} {} {}",
            k + 1,
            tri[0] + 1,
            tri[1] + 1,
            tri[2] + 1
        )?;
    }
    writeln!(w, "$EndElements")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::generate::{disk, square};

    fn parse(text: &str) -> Result<MshImport> {
        parse_msh(text.as_bytes(), Path::new("test.msh"))
    }

    fn err(text: &str) -> String {
        match parse(text) {
            Ok(_) => panic!("expected an error for:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    fn to_string(mesh: &TriMesh, v41: bool) -> String {
        let mut buf = Vec::new();
        if v41 {
            msh41(mesh, &mut buf).unwrap();
        } else {
            msh22(mesh, &mut buf).unwrap();
        }
        String::from_utf8(buf).unwrap()
    }

    /// A Gmsh-like 4.1 file: geometry points, boundary lines, non-contiguous node tags in several
    /// blocks (one parametric), a clockwise triangle and an unused node.
    const V41: &str = "$MeshFormat
4.1 0 8
$EndMeshFormat
$PhysicalNames
1
2 7 \"plate\"
$EndPhysicalNames
$Entities
2 0 1 0
1 0 0 0 0
2 1 0 0 0
3 0 0 0 1 1 0 1 7 0
$EndEntities
$Nodes
3 6 10 90
0 1 0 1
10
0 0 0
1 2 1 2
20
30
1 0 0 0.5
0 1 0 0.25
2 3 0 3
40
50
90
1 1 0
-1 0.5 0
7 7 0
$EndNodes
$Elements
3 5 1 105
0 1 15 1
1 10
1 4 1 1
2 10 20
2 3 2 3
100 10 20 40
101 10 30 50
105 10 30 40
$EndElements
";

    #[test]
    fn reads_gmsh_like_v41() {
        let imp = parse(V41).unwrap();
        let m = &imp.mesh;
        assert_eq!(imp.version, "4.1");
        // Node 90 is used by nothing; 10 20 30 40 50 are kept.
        assert_eq!(m.n_nodes(), 5);
        assert_eq!(imp.node_tags, vec![10, 20, 30, 40, 50]);
        assert_eq!(imp.triangle_tags, vec![100, 101, 105]);
        assert_eq!(m.n_triangles(), 3);
        let joined = imp.notes.join("\n");
        assert!(joined.contains("1 × type 15 (1-node point)"), "{joined}");
        assert!(joined.contains("1 × type 1 (2-node line)"), "{joined}");
        assert!(joined.contains("dropped 1 node"), "{joined}");
        assert!(joined.contains("reoriented 1"), "{joined}");
        // Triangle 105 = (10, 30, 40) = (0,0), (0,1), (1,1): clockwise in the file.
        let area = 1.5;
        assert!((m.area() - area).abs() < 1e-14, "{}", m.area());
    }

    const V22: &str = "$MeshFormat
2.2 0 8
$EndMeshFormat
$Nodes
5
7 0 0 0
3 1 0 0
12 1 1 0
5 0 1 0
100 9 9 0
$EndNodes
$Elements
4
1 15 2 0 1 7
2 1 2 0 1 7 3
3 2 2 1 1 7 3 12
4 2 3 1 1 0 7 12 5
$EndElements
";

    #[test]
    fn reads_v22_with_tags_and_unused_nodes() {
        let imp = parse(V22).unwrap();
        assert_eq!(imp.version, "2.2");
        assert_eq!(imp.node_tags, vec![7, 3, 12, 5]);
        assert_eq!(imp.triangle_tags, vec![3, 4]);
        assert!((imp.mesh.area() - 1.0).abs() < 1e-15);
        assert_eq!(imp.mesh.boundary, vec![true; 4]);
        assert_eq!(imp.notes.len(), 3, "{:?}", imp.notes);
    }

    #[test]
    fn write_read_roundtrip_is_exact() {
        let meshes = [
            square(5).unwrap(),
            crate::mesh::generate::perturb_interior(&disk(1.0, 4).unwrap(), 0.2, 5).unwrap(),
        ];
        for m in &meshes {
            for v41 in [true, false] {
                let imp = parse(&to_string(m, v41)).unwrap();
                assert_eq!(&imp.mesh, m);
                assert!(imp.notes.is_empty(), "{:?}", imp.notes);
                assert_eq!(imp.node_tags, (1..=m.n_nodes() as u64).collect::<Vec<_>>());
            }
        }
        // And through real files.
        let dir = std::env::temp_dir().join(format!("lgn-gmsh-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p41 = dir.join("a.msh");
        let p22 = dir.join("b.msh");
        write_msh41(&meshes[1], &p41).unwrap();
        write_msh22(&meshes[1], &p22).unwrap();
        let (a, _) = read_msh(&p41).unwrap();
        let (b, _) = read_msh(&p22).unwrap();
        assert_eq!(a, b);
        assert_eq!(a, meshes[1]);
        let e = read_msh(dir.join("missing.msh")).unwrap_err().to_string();
        assert!(
            e.contains("missing.msh") && e.contains("cannot read"),
            "{e}"
        );
        let e = write_msh41(&a, dir.join("no/such/dir.msh"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot write"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn number_format_round_trips() {
        for x in [
            0.0,
            -0.0,
            1e-17,
            -3.3e-300,
            0.1,
            1.0 / 3.0,
            12345.678,
            2e15,
            -7e301,
            5e-324,
        ] {
            assert_eq!(num(x).parse::<f64>().unwrap(), x, "{}", num(x));
        }
        assert_eq!(num(1.020538999289461e-17), "1.020538999289461e-17");
        assert_eq!(num(0.5), "0.5");
    }

    #[test]
    fn format_errors_are_clear() {
        let e = err("$MeshFormat\n4.1 1 8\n\u{1}\0\0\0\n$EndMeshFormat\n$Nodes\n\u{ff}\u{fe}");
        assert!(
            e.contains("test.msh: line 2: binary MSH is not supported, re-export as ASCII"),
            "{e}"
        );
        let e = err("$MeshFormat\n3.0 0 8\n$EndMeshFormat\n");
        assert!(
            e.contains("line 2") && e.contains("unknown MSH version '3.0'"),
            "{e}"
        );
        let e = err("$MeshFormat\n4 0 8\n$EndMeshFormat\n");
        assert!(e.contains("4.0 is not supported"), "{e}");
        let e = err("$NOD\n3\n$ENDNOD\n");
        assert!(
            e.contains("line 1") && e.contains("must start with $MeshFormat"),
            "{e}"
        );
        assert!(err("").contains("empty file"));
        assert!(err("$MeshFormat\n4.1\n$EndMeshFormat\n").contains("malformed $MeshFormat"));
        let e = err("$MeshFormat\n4.1 0 8\n$EndMeshFormat\n$Elements\n0 0 0 0\n$EndElements\n");
        assert!(e.contains("no $Nodes section"), "{e}");
        let e = err("$MeshFormat\n2.2 0 8\n$EndMeshFormat\n$Nodes\n0\n$EndNodes\n");
        assert!(e.contains("no $Elements section"), "{e}");
        let bin = b"$MeshFormat\n2.2 0 8\n$EndMeshFormat\n$Nodes\n1\n1 0 0 \xff\n$EndNodes\n";
        let e = parse_msh(bin, Path::new("x.msh")).unwrap_err().to_string();
        assert!(e.contains("x.msh: line 6: invalid (non-text) byte"), "{e}");
    }

    #[test]
    fn content_errors_name_the_line() {
        // Truncated: no $EndElements.
        let cut = &V22[..V22.find("$EndElements").unwrap()];
        let e = err(cut);
        assert!(
            e.contains("line 12") && e.contains("$Elements section is not closed"),
            "{e}"
        );
        // Counts larger than the data.
        let e = err(&V22.replace("\n4\n1 15", "\n5\n1 15"));
        assert!(e.contains("line 18") && e.contains("ends before"), "{e}");
        // Counts smaller than the data.
        let e = err(&V22.replace("\n4\n1 15", "\n3\n1 15"));
        assert!(
            e.contains("line 17") && e.contains("unexpected data '4'"),
            "{e}"
        );
        // Unknown node.
        let e = err(&V22.replace("3 2 2 1 1 7 3 12", "3 2 2 1 1 7 3 13"));
        assert!(
            e.contains("line 16") && e.contains("references node 13"),
            "{e}"
        );
        // Non-numeric tokens.
        let e = err(&V22.replace("12 1 1 0", "12 1 abc 0"));
        assert!(e.contains("line 8") && e.contains("found 'abc'"), "{e}");
        let e = err(&V22.replace("12 1 1 0", "12 1 nan 0"));
        assert!(e.contains("line 8") && e.contains("not finite"), "{e}");
        let e = err(&V41.replace("101 10 30 50", "101 10 x 50"));
        assert!(e.contains("line 40") && e.contains("found 'x'"), "{e}");
        // Duplicate node tag.
        let e = err(&V22.replace("5 0 1 0", "3 0 1 0"));
        assert!(
            e.contains("line 9") && e.contains("node tag 3 is defined twice"),
            "{e}"
        );
        // No triangles.
        let e = err(&V22
            .replace("\n4\n1 15", "\n2\n1 15")
            .replace("3 2 2 1 1 7 3 12\n4 2 3 1 1 0 7 12 5\n", ""));
        assert!(
            e.contains("line 12") && e.contains("no 3-node triangles"),
            "{e}"
        );
        assert!(e.contains("2-node line"), "{e}");
        // Only second-order triangles.
        let e = err("$MeshFormat\n2.2 0 8\n$EndMeshFormat\n$Nodes\n6\n1 0 0 0\n2 1 0 0\n3 0 1 0\n4 .5 0 0\n5 .5 .5 0\n6 0 .5 0\n$EndNodes\n$Elements\n1\n1 9 0 1 2 3 4 5 6\n$EndElements\n");
        assert!(
            e.contains("6-node second-order triangle") && e.contains("ElementOrder = 1"),
            "{e}"
        );
        // Non-planar.
        let e = err(&V22.replace("12 1 1 0", "12 1 1 0.5"));
        assert!(
            e.contains("test.msh: mesh is not planar") && e.contains("node 12"),
            "{e}"
        );
        // Planar but shifted: accepted with a note.
        let ok = parse(&V22.replace(" 0\n", " 2\n")).unwrap();
        assert!(
            ok.notes.iter().any(|n| n.contains("z = 2")),
            "{:?}",
            ok.notes
        );
        // Degenerate triangle.
        let e = err(&V22.replace("3 2 2 1 1 7 3 12", "3 2 2 1 1 7 3 7"));
        assert!(e.contains("line 16") && e.contains("degenerate"), "{e}");
        // Overlapping triangles (duplicate).
        let e = err(&V22.replace("4 2 3 1 1 0 7 12 5", "4 2 3 1 1 0 7 3 12"));
        assert!(
            e.contains("invalid triangle mesh") && e.contains("overlap"),
            "{e}"
        );
        // 4.1 header/blocks mismatch.
        let e = err(&V41.replace("3 6 10 90", "3 7 10 90"));
        assert!(
            e.contains("declares 7 nodes but its blocks contain 6"),
            "{e}"
        );
        // Stray text between sections.
        let e = err(&V22.replace("$EndNodes\n", "$EndNodes\nhello\n"));
        assert!(
            e.contains("line 12") && e.contains("outside any section"),
            "{e}"
        );
        // Duplicate section.
        let e = err(&format!("{V22}$Nodes\n0\n$EndNodes\n"));
        assert!(e.contains("second $Nodes"), "{e}");
    }

    #[test]
    fn unknown_element_types_are_skipped_by_line() {
        let t = V22.replace("1 15 2 0 1 7\n", "1 77 2 0 1 7 3 12 5 9 9\n");
        let imp = parse(&t).unwrap();
        assert!(
            imp.notes
                .iter()
                .any(|n| n.contains("type 77 (unknown type)")),
            "{:?}",
            imp.notes
        );
    }

    fn lcg(s: &mut u64) -> u64 {
        *s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *s >> 33
    }

    #[test]
    fn never_panics_on_truncated_or_garbage_input() {
        for v41 in [true, false] {
            let text = to_string(&square(2).unwrap(), v41);
            let bytes = text.as_bytes();
            // Every strict prefix that lacks the closing "$EndElements" line is an error.
            for len in 0..bytes.len() - 1 {
                let r = parse_msh(&bytes[..len], Path::new("t.msh"));
                assert!(r.is_err(), "prefix of length {len} parsed");
            }
            // Random byte mutations: Ok or Err, never a panic.
            let mut s = 42u64;
            for _ in 0..2000 {
                let mut b = bytes.to_vec();
                for _ in 0..1 + lcg(&mut s) % 4 {
                    let i = (lcg(&mut s) as usize) % b.len();
                    b[i] = match lcg(&mut s) % 4 {
                        0 => b' ',
                        1 => b'\n',
                        2 => b"0123456789-.e$"[(lcg(&mut s) % 14) as usize],
                        _ => lcg(&mut s) as u8,
                    };
                }
                let _ = parse_msh(&b, Path::new("t.msh"));
            }
            // Token-level garbage: random lines of the file shuffled.
            let lines: Vec<&str> = text.lines().collect();
            for _ in 0..500 {
                let mut out = String::new();
                for _ in 0..lcg(&mut s) % 40 {
                    out.push_str(lines[(lcg(&mut s) as usize) % lines.len()]);
                    out.push('\n');
                }
                let _ = parse(&out);
            }
        }
        // Pure random bytes, and hostile headers.
        let mut s = 7u64;
        for _ in 0..500 {
            let n = (lcg(&mut s) % 300) as usize;
            let b: Vec<u8> = (0..n).map(|_| lcg(&mut s) as u8).collect();
            assert!(parse_msh(&b, Path::new("g.msh")).is_err());
            let mut t = b"$MeshFormat\n4.1 0 8\n$EndMeshFormat\n".to_vec();
            t.extend_from_slice(&b);
            assert!(parse_msh(&t, Path::new("g.msh")).is_err());
        }
        let huge = "$MeshFormat\n4.1 0 8\n$EndMeshFormat\n$Nodes\n18446744073709551615 18446744073709551615 1 2\n$EndNodes\n$Elements\n1 1 1 1\n2 1 2 99999999999999\n1 1 2 3\n$EndElements\n";
        assert!(parse(huge).is_err());
        let huge = "$MeshFormat\n2.2 0 8\n$EndMeshFormat\n$Nodes\n1\n1 0 0 0\n$EndNodes\n$Elements\n1\n1 2 18446744073709551615 1\n$EndElements\n";
        assert!(parse(huge).is_err());
    }

    /// 10^6-node round trip through a real file (slow in debug builds: run with --ignored).
    #[test]
    #[ignore]
    fn large_file_roundtrip() {
        let m = crate::mesh::generate::unit_square_nodes(1_000_000).unwrap();
        let p = std::env::temp_dir().join(format!("lgn-large-{}.msh", std::process::id()));
        let t = std::time::Instant::now();
        write_msh41(&m, &p).unwrap();
        let dw = t.elapsed().as_secs_f64();
        let size = std::fs::metadata(&p).unwrap().len();
        let t = std::time::Instant::now();
        let (r, _) = read_msh(&p).unwrap();
        let dr = t.elapsed().as_secs_f64();
        std::fs::remove_file(&p).unwrap();
        assert_eq!(r, m);
        eprintln!("10^6 nodes, {size} bytes: write {dw:.2} s, read {dr:.2} s");
    }
}
