//! A local flat apt repository of generated packages: `.deb` files built with `dpkg-deb` and a
//! `Packages` index written by `dpkg-scanpackages`, changeable between `apt-get update`s.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cmd;
use crate::error::{Error, Result};
use crate::spec::PackageSpec;

/// Name of the staging directory inside the repository while a `.deb` is being built.
const STAGING: &str = ".staging";

/// A flat repository (`deb [trusted=yes] file:<dir> ./`) in one directory.
///
/// The directory holds `<name>_<version>_<arch>.deb` files and `Packages`; apt reads
/// `Packages` directly (no Release file; `[trusted=yes]` lets apt accept that).
#[derive(Debug)]
pub struct AptRepo {
    dir: PathBuf,
    published: BTreeMap<(String, String), PackageSpec>,
}

impl AptRepo {
    /// Creates (or reuses) `dir`, builds every spec into a `.deb` and writes the index.
    /// Identical specs given twice are built once; different specs with one name and
    /// version are refused.
    pub fn create(dir: &Path, packages: &[PackageSpec]) -> Result<AptRepo> {
        fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
        let dir = fs::canonicalize(dir).map_err(|e| Error::io("canonicalize", dir, e))?;
        let mut repo = AptRepo {
            dir,
            published: BTreeMap::new(),
        };
        for spec in packages {
            let key = (spec.name.clone(), spec.version.clone());
            match repo.published.get(&key) {
                Some(existing) if existing == spec => continue,
                Some(_) => {
                    return Err(Error::Duplicate {
                        name: key.0,
                        version: key.1,
                    });
                }
                None => {}
            }
            repo.build(spec)?;
            repo.published.insert(key, spec.clone());
        }
        repo.reindex()?;
        Ok(repo)
    }

    /// Publishes `spec` (replacing a package of the same name and version) and rewrites the
    /// index. Apt sees it after the next `apt-get update`.
    pub fn add(&mut self, spec: &PackageSpec) -> Result<()> {
        if let Some(old) = self
            .published
            .get(&(spec.name.clone(), spec.version.clone()))
        {
            let old_deb = self.dir.join(old.deb_file_name());
            fs::remove_file(&old_deb).map_err(|e| Error::io("remove", old_deb, e))?;
        }
        self.build(spec)?;
        self.published
            .insert((spec.name.clone(), spec.version.clone()), spec.clone());
        self.reindex()
    }

    /// Withdraws `name` at `version` (deletes its `.deb`) and rewrites the index.
    pub fn remove(&mut self, name: &str, version: &str) -> Result<()> {
        let Some(spec) = self
            .published
            .remove(&(name.to_owned(), version.to_owned()))
        else {
            return Err(Error::NotPublished {
                name: name.to_owned(),
                version: version.to_owned(),
                repo: self.dir.clone(),
            });
        };
        let deb = self.dir.join(spec.deb_file_name());
        fs::remove_file(&deb).map_err(|e| Error::io("remove", deb, e))?;
        self.reindex()
    }

    /// The repository directory (absolute).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The `Packages` index apt reads.
    pub fn packages_index_path(&self) -> PathBuf {
        self.dir.join("Packages")
    }

    /// Where the `.deb` of a published package is, if it is published.
    pub fn deb_path(&self, name: &str, version: &str) -> Option<PathBuf> {
        self.published
            .get(&(name.to_owned(), version.to_owned()))
            .map(|spec| self.dir.join(spec.deb_file_name()))
    }

    /// The specs currently published, by name then version.
    pub fn published(&self) -> impl Iterator<Item = &PackageSpec> {
        self.published.values()
    }

    /// The `sources.list` line for this repository.
    pub fn source_line(&self) -> String {
        format!("deb [trusted=yes] file:{} ./", self.dir.display())
    }

    /// Builds `spec` into `<dir>/<name>_<version>_<arch>.deb` from a staging tree.
    fn build(&self, spec: &PackageSpec) -> Result<()> {
        spec.validate()?;
        let staging_parent = self.dir.join(STAGING);
        let stage = staging_parent.join(format!("{}_{}", spec.name, spec.version));
        if stage.exists() {
            fs::remove_dir_all(&stage).map_err(|e| Error::io("remove staging", &stage, e))?;
        }
        let control_dir = stage.join("DEBIAN");
        make_dirs(&stage, &control_dir)?;
        write_file(&control_dir.join("control"), spec.control().as_bytes())?;
        for (rel, contents) in &spec.files {
            let path = stage.join(rel);
            if let Some(parent) = path.parent() {
                make_dirs(&stage, parent)?;
            }
            write_file(&path, contents)?;
        }
        let out = self.dir.join(spec.deb_file_name());
        cmd::run_ok(
            Command::new("dpkg-deb")
                .arg("--build")
                .arg("--root-owner-group")
                .arg(&stage)
                .arg(&out),
        )?;
        fs::remove_dir_all(&staging_parent)
            .map_err(|e| Error::io("remove staging", &staging_parent, e))?;
        Ok(())
    }

    /// Rewrites `Packages` from the `.deb` files now in the directory. `--multiversion` keeps
    /// every version of a name (e.g. the metapackage for two kernels), which apt needs to
    /// resolve `PKG=VER` for an older one.
    fn reindex(&self) -> Result<()> {
        let out = cmd::run_ok(
            Command::new("dpkg-scanpackages")
                .arg("--multiversion")
                .arg(".")
                .arg("/dev/null")
                .current_dir(&self.dir),
        )?;
        let tmp = self.dir.join("Packages.new");
        write_file(&tmp, &out.stdout)?;
        let index = self.packages_index_path();
        fs::rename(&tmp, &index).map_err(|e| Error::io("rename", &index, e))
    }
}

/// Creates `dir` and its missing ancestors below `base`, each with mode 0755 whatever the
/// umask (dpkg-deb refuses a control directory outside 0755..=0775).
fn make_dirs(base: &Path, dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
    let mut cur = Some(dir);
    while let Some(d) = cur {
        if !d.starts_with(base) {
            break;
        }
        fs::set_permissions(d, fs::Permissions::from_mode(0o755))
            .map_err(|e| Error::io("chmod 0755", d, e))?;
        cur = d.parent();
    }
    Ok(())
}

/// Writes a file with mode 0644 whatever the umask.
pub(crate) fn write_file(path: &Path, contents: &[u8]) -> Result<()> {
    fs::write(path, contents).map_err(|e| Error::io("write", path, e))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o644))
        .map_err(|e| Error::io("chmod 0644", path, e))
}
