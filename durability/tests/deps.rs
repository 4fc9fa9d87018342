//! The simulator may use only the gateway's pure decision modules: ids, placement, scoring and
//! repair. Anything else (gateway, registry, control) would pull I/O into the simulation.

use std::path::Path;

const ALLOWED: &[&str] = &["ids", "placement", "scoring", "repair"];

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn only_pure_tracker_modules_are_used() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    sources(&root.join("tests"), &mut files);
    let needle = ["raidtorrent", "_tracker::"].concat();
    for file in files.iter().filter(|f| !f.ends_with("deps.rs")) {
        let text = std::fs::read_to_string(file).expect("readable source");
        for (at, _) in text.match_indices(&needle) {
            let rest = &text[at + needle.len()..];
            let names: Vec<&str> = match rest.strip_prefix('{') {
                Some(group) => group.split('}').next().unwrap_or("").split(',').collect(),
                None => vec![rest],
            };
            for name in names {
                let module: String = name
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                assert!(
                    module.is_empty() || ALLOWED.contains(&module.as_str()),
                    "{} uses the tracker's {module}",
                    file.display()
                );
            }
        }
    }
}
