//! The operator's image (`make image`, hack/image/build.sh): the references that name it agree,
//! its config runs /gatehouse as the nonroot user, it holds the binary's runtime and no shell or
//! package manager, and /gatehouse runs in its unpacked root filesystem as uid 65532, so that a
//! library missing from the image fails here rather than in a Pod.
//!
//! The tests that need the built image are #[ignore]d, so that a plain `cargo test` lists them as
//! ignored instead of passing them unrun; `make test-image` builds the image and includes them.
//! They unpack it with GNU tar and run it with chroot, both as root (as a container runtime does).

use std::collections::BTreeSet;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use object::read::elf::{Dyn, ElfFile64, FileHeader, ProgramHeader};
use object::{Endianness, elf};
use serde_json::Value;
use sha2::{Digest, Sha256};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const VERSION: &str = env!("CARGO_PKG_VERSION");
/// distroless' nonroot user and group, which deploy/ and the chart run the Pod as.
const NONROOT: u32 = 65532;

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{ROOT}/{path}")).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn yaml_documents(path: &str) -> Vec<serde_yaml::Value> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(&read(path))
        .map(|document| {
            serde_yaml::Value::deserialize(document).unwrap_or_else(|e| panic!("{path}: {e}"))
        })
        .collect()
}

/// The image reference is derived from Cargo.toml's version (hack/image/build.sh); a default
/// install pulls exactly that reference, only if the node lacks it, and passes `run` as the
/// arguments of the image's entrypoint (the image has no Cmd).
#[test]
fn the_chart_deploy_and_the_image_name_the_same_reference() {
    let chart: serde_yaml::Value =
        serde_yaml::from_str(&read("charts/gatehouse/Chart.yaml")).expect("Chart.yaml");
    assert_eq!(
        chart["appVersion"].as_str(),
        Some(VERSION),
        "charts/gatehouse/Chart.yaml appVersion must be Cargo.toml's version"
    );
    let values: serde_yaml::Value =
        serde_yaml::from_str(&read("charts/gatehouse/values.yaml")).expect("values.yaml");
    let image = &values["image"];
    assert_eq!(image["repository"].as_str(), Some("gatehouse"));
    assert_eq!(
        image["tag"].as_str(),
        Some(""),
        "the chart's default tag is its appVersion"
    );
    assert_eq!(image["pullPolicy"].as_str(), Some("IfNotPresent"));

    let deployments: Vec<_> = yaml_documents("deploy/base/deployment.yaml")
        .into_iter()
        .filter(|d| d["kind"].as_str() == Some("Deployment"))
        .collect();
    assert_eq!(deployments.len(), 1, "one Deployment in deploy/base");
    let container = &deployments[0]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["image"].as_str(),
        Some(format!("gatehouse:{VERSION}").as_str()),
        "deploy/base/deployment.yaml's image must be gatehouse:<Cargo.toml version>"
    );
    assert_eq!(container["imagePullPolicy"].as_str(), Some("IfNotPresent"));
    assert!(
        container["command"].is_null(),
        "the image's entrypoint runs"
    );
    assert_eq!(container["args"][0].as_str(), Some("run"));
    assert!(
        read("charts/gatehouse/templates/deployment.yaml").contains("args: [\"run\""),
        "the chart passes `run` to the entrypoint"
    );
}

/// The built image, unpacked: the archive's manifest and config, and the layers extracted in order
/// into `rootfs`.
struct Image {
    manifest: Value,
    config: Value,
    rootfs: PathBuf,
}

fn image_dir() -> PathBuf {
    std::env::var_os("GATEHOUSE_IMAGE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(format!("{ROOT}/target/image")))
}

fn run(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?} did not start: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

impl Image {
    /// Unpacks target/image/gatehouse.tar into a directory of its own for `test`.
    fn unpack(test: &str) -> Image {
        let tarball = image_dir().join("gatehouse.tar");
        assert!(
            tarball.is_file(),
            "{} is missing: run `make image` (or `make test-image`)",
            tarball.display()
        );
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("image-{test}"));
        if dir.exists() {
            std::fs::remove_dir_all(&dir).expect("remove the previous unpacking");
        }
        let archive = dir.join("archive");
        let rootfs = dir.join("rootfs");
        std::fs::create_dir_all(&archive).expect("archive dir");
        std::fs::create_dir_all(&rootfs).expect("rootfs dir");
        // A runtime's root directory is world-searchable; the nonroot user must reach /gatehouse.
        std::fs::set_permissions(&rootfs, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        run(Command::new("tar")
            .arg("--extract")
            .arg("--file")
            .arg(&tarball)
            .arg("--directory")
            .arg(&archive));

        let manifest: Value = serde_json::from_slice(
            &std::fs::read(archive.join("manifest.json")).expect("manifest.json"),
        )
        .expect("manifest.json is JSON");
        let config_name = manifest[0]["Config"]
            .as_str()
            .expect("manifest names the config");
        let config_bytes = std::fs::read(archive.join(config_name)).expect("config file");
        assert_eq!(
            config_name,
            format!("sha256:{}", sha256_hex(&config_bytes)),
            "the config file is named by its digest"
        );
        let config: Value = serde_json::from_slice(&config_bytes).expect("config is JSON");

        let layers = manifest[0]["Layers"]
            .as_array()
            .expect("manifest lists layers");
        let diff_ids = config["rootfs"]["diff_ids"]
            .as_array()
            .expect("config lists diff_ids");
        assert_eq!(layers.len(), diff_ids.len(), "one diff_id per layer");
        for (layer, diff_id) in layers.iter().zip(diff_ids) {
            let layer = archive.join(layer.as_str().expect("layer file name"));
            let mut uncompressed = Vec::new();
            Command::new("gzip")
                .arg("--decompress")
                .arg("--stdout")
                .arg(&layer)
                .stdout(Stdio::piped())
                .spawn()
                .expect("gzip starts")
                .stdout
                .expect("gzip's stdout")
                .read_to_end(&mut uncompressed)
                .expect("gzip decompresses the layer");
            assert_eq!(
                diff_id.as_str(),
                Some(format!("sha256:{}", sha256_hex(&uncompressed)).as_str()),
                "{} does not match its diff_id",
                layer.display()
            );
            // As a runtime unpacks: owners and modes exactly as recorded (we are root).
            run(Command::new("tar")
                .args([
                    "--extract",
                    "--numeric-owner",
                    "--same-owner",
                    "--same-permissions",
                ])
                .arg("--file")
                .arg(&layer)
                .arg("--directory")
                .arg(&rootfs));
        }
        Image {
            manifest,
            config,
            rootfs,
        }
    }

    /// `path` inside the image (absolute, as the image names it) on the host.
    fn path(&self, path: &str) -> PathBuf {
        self.rootfs.join(path.trim_start_matches('/'))
    }

    /// Follows symlinks inside the image (their absolute targets name image paths).
    fn resolve(&self, path: &str) -> Option<PathBuf> {
        let mut path = path.to_owned();
        for _ in 0..16 {
            let host = self.path(&path);
            let metadata = std::fs::symlink_metadata(&host).ok()?;
            if !metadata.file_type().is_symlink() {
                return Some(host);
            }
            let target = std::fs::read_link(&host).ok()?;
            let target = target.to_str()?;
            path = if target.starts_with('/') {
                target.to_owned()
            } else {
                format!("{}/{target}", Path::new(&path).parent()?.display())
            };
        }
        None
    }

    /// Every entry of the root filesystem, as image paths.
    fn entries(&self) -> Vec<String> {
        fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).expect("read_dir") {
                let entry = entry.expect("entry");
                let path = entry.path();
                out.push(format!(
                    "/{}",
                    path.strip_prefix(root).expect("under root").display()
                ));
                if entry.file_type().expect("file type").is_dir() {
                    walk(&path, root, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.rootfs, &self.rootfs, &mut out);
        out.sort();
        out
    }

    fn env(&self) -> Vec<(String, String)> {
        self.config["config"]["Env"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str()?.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    /// Runs `/gatehouse args` in the image's root filesystem as the image's user, with only the
    /// image's environment.
    fn gatehouse(&self, args: &[&str]) -> Output {
        let user = self.config["config"]["User"].as_str().expect("User");
        let output = Command::new("chroot")
            .arg(format!("--userspec={user}"))
            .arg(&self.rootfs)
            .arg("/gatehouse")
            .args(args)
            .env_clear()
            .envs(self.env())
            .output()
            .expect("chroot starts (coreutils)");
        assert!(
            output.status.success(),
            "/gatehouse {args:?} failed in the image as {user} ({}; chroot needs root): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }
}

/// The Docker/OCI architecture name of the machine the tests run on (the image is built for it).
fn image_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

#[test]
#[ignore = "needs the built image: make test-image"]
fn the_image_config_runs_gatehouse_as_nonroot() {
    let image = Image::unpack("config");
    assert_eq!(
        image.manifest[0]["RepoTags"],
        serde_json::json!([format!("gatehouse:{VERSION}")]),
        "containerd imports it as docker.io/library/gatehouse:{VERSION}, what image gatehouse:{VERSION} resolves to"
    );
    let config = &image.config["config"];
    assert_eq!(config["User"], "65532:65532");
    assert_eq!(config["Entrypoint"], serde_json::json!(["/gatehouse"]));
    assert!(
        config["Cmd"].is_null(),
        "no Cmd: deploy/ and the chart pass `run`"
    );
    assert_eq!(config["WorkingDir"], "/home/nonroot");
    assert!(
        image.env().contains(&(
            "SSL_CERT_FILE".into(),
            "/etc/ssl/certs/ca-certificates.crt".into()
        )),
        "the CA bundle is named as in distroless: {:?}",
        image.env()
    );
    assert_eq!(image.config["os"], "linux");
    assert_eq!(image.config["architecture"], image_architecture());
}

/// The runtime files the binary needs and distroless carries, owned and moded as there; nothing to
/// run but /gatehouse and its libraries.
#[test]
#[ignore = "needs the built image: make test-image"]
fn the_image_holds_the_runtime_and_no_shell_or_package_manager() {
    let image = Image::unpack("contents");
    let entries = image.entries();
    println!("image entries: {entries:#?}");

    const SHELLS_AND_PACKAGE_MANAGERS: &[&str] = &[
        "sh", "bash", "dash", "ash", "ksh", "zsh", "csh", "tcsh", "fish", "busybox", "dpkg", "apt",
        "apt-get", "rpm", "apk",
    ];
    for entry in &entries {
        let name = Path::new(entry)
            .file_name()
            .expect("name")
            .to_string_lossy();
        assert!(
            !SHELLS_AND_PACKAGE_MANAGERS.contains(&name.as_ref()),
            "{entry} is in the image"
        );
        let metadata = std::fs::symlink_metadata(image.path(entry)).expect("metadata");
        if metadata.is_file() && metadata.mode() & 0o111 != 0 {
            assert!(
                entry == "/gatehouse" || name.contains(".so"),
                "{entry} is executable: only /gatehouse and shared libraries may be"
            );
        }
        if entry != "/home/nonroot" {
            assert_eq!(
                (metadata.uid(), metadata.gid()),
                (0, 0),
                "{entry} is owned by root"
            );
        }
    }

    let home = std::fs::metadata(image.path("/home/nonroot")).expect("/home/nonroot");
    assert!(home.is_dir());
    assert_eq!(
        (home.uid(), home.gid()),
        (NONROOT, NONROOT),
        "/home/nonroot is the nonroot user's"
    );
    let tmp = std::fs::metadata(image.path("/tmp")).expect("/tmp");
    assert!(tmp.is_dir());
    assert_eq!(
        tmp.mode() & 0o7777,
        0o1777,
        "/tmp is world-writable and sticky"
    );

    let passwd = std::fs::read_to_string(image.path("/etc/passwd")).expect("/etc/passwd");
    for user in [
        "root:x:0:0:",
        "nobody:x:65534:65534:",
        "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin",
    ] {
        assert!(
            passwd.lines().any(|l| l.starts_with(user)),
            "/etc/passwd lacks {user}: {passwd}"
        );
    }
    let group = std::fs::read_to_string(image.path("/etc/group")).expect("/etc/group");
    for entry in ["root:x:0:", "nobody:x:65534:", "nonroot:x:65532:"] {
        assert!(
            group.lines().any(|l| l == entry),
            "/etc/group lacks {entry}: {group}"
        );
    }
    let certificates = std::fs::read_to_string(image.path("/etc/ssl/certs/ca-certificates.crt"))
        .expect("/etc/ssl/certs/ca-certificates.crt (Debian's ca-certificates)");
    let count = certificates.matches("-----BEGIN CERTIFICATE-----").count();
    println!("CA bundle: {count} certificates");
    assert!(count > 0, "the CA bundle holds no certificate");
}

/// An ELF file's program interpreter and NEEDED libraries.
fn dynamic_dependencies(path: &Path) -> (Option<String>, Vec<String>) {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file = ElfFile64::<Endianness>::parse(&*data)
        .unwrap_or_else(|e| panic!("{} is not a 64-bit ELF file: {e}", path.display()));
    let endian = file.endian();
    let header = file.elf_header();
    let mut interpreter = None;
    let mut needed = Vec::new();
    for segment in header
        .program_headers(endian, &*data)
        .expect("program headers")
    {
        if let Some(interp) = segment.interpreter(endian, &*data).expect("PT_INTERP") {
            interpreter = Some(String::from_utf8_lossy(interp).into_owned());
        }
    }
    let sections = header.sections(endian, &*data).expect("section headers");
    if let Some((entries, strings)) = sections.dynamic(endian, &*data).expect(".dynamic") {
        let strings = sections
            .strings(endian, &*data, strings)
            .expect(".dynamic's string table");
        for entry in entries {
            if entry.d_tag(endian) == elf::DT_NEEDED {
                let name = entry.string(endian, strings).expect("NEEDED name");
                needed.push(String::from_utf8_lossy(name).into_owned());
            }
        }
    }
    (interpreter, needed)
}

/// The program interpreter and every NEEDED library of /gatehouse, and of those libraries, are in
/// the image where the loader looks without an ld.so.cache (Debian's multiarch and plain lib dirs).
#[test]
#[ignore = "needs the built image: make test-image"]
fn every_library_gatehouse_needs_is_in_the_image() {
    let image = Image::unpack("libraries");
    let (interpreter, _) = dynamic_dependencies(&image.path("/gatehouse"));
    let interpreter = interpreter.expect("/gatehouse is dynamically linked (PT_INTERP)");
    assert!(
        image.resolve(&interpreter).is_some_and(|p| p.is_file()),
        "the program interpreter {interpreter} is not in the image"
    );
    let triple = format!("{}-linux-gnu", std::env::consts::ARCH);
    let search = [
        format!("/lib/{triple}"),
        format!("/usr/lib/{triple}"),
        "/lib".to_owned(),
        "/usr/lib".to_owned(),
    ];
    let mut seen = BTreeSet::new();
    let mut pending = vec!["/gatehouse".to_owned()];
    while let Some(file) = pending.pop() {
        let host = image.resolve(&file).expect("resolved before");
        for library in dynamic_dependencies(&host).1 {
            if !seen.insert(library.clone()) {
                continue;
            }
            let found = search
                .iter()
                .map(|dir| format!("{dir}/{library}"))
                .find(|path| image.resolve(path).is_some_and(|p| p.is_file()))
                .unwrap_or_else(|| panic!("{library} (needed by {file}) is not in {search:?}"));
            pending.push(found);
        }
    }
    println!("NEEDED closure of /gatehouse: {seen:?}, interpreter {interpreter}");
    assert!(
        seen.contains("libc.so.6"),
        "glibc is among the libraries: {seen:?}"
    );
}

/// The real proof: the kernel loads /gatehouse with the image's loader and libraries, as the
/// nonroot user with only the image's environment, and it is the binary of this source tree.
#[test]
#[ignore = "needs the built image: make test-image"]
fn gatehouse_runs_in_the_image_as_nonroot() {
    let image = Image::unpack("runs");
    let version = image.gatehouse(&["--version"]);
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("gatehouse {VERSION}")
    );
    let crd = image.gatehouse(&["crd"]);
    assert!(
        String::from_utf8_lossy(&crd.stdout) == read("crds/gatehouse.yaml"),
        "the image's /gatehouse prints other CRDs than crds/gatehouse.yaml: it is not this tree's binary (make image)"
    );
}

/// The same binary gives the same image, byte for byte: assembled again from the image's own
/// /gatehouse into another directory, the tarball and its digest are identical.
#[test]
#[ignore = "needs the built image: make test-image"]
fn the_same_binary_gives_the_same_image() {
    let image = Image::unpack("reproducible");
    let again = image.rootfs.parent().expect("parent").join("again");
    let output = run(Command::new("bash")
        .arg(format!("{ROOT}/hack/image/build.sh"))
        .env("GATEHOUSE_IMAGE_BINARY", image.path("/gatehouse"))
        .env("GATEHOUSE_IMAGE_DIR", &again)
        .stderr(Stdio::inherit()));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        again.join("gatehouse.tar").display().to_string()
    );
    let digest =
        |dir: &Path| std::fs::read_to_string(dir.join("gatehouse.digest")).expect("digest");
    assert_eq!(digest(&again), digest(&image_dir()));
    assert!(
        std::fs::read(again.join("gatehouse.tar")).expect("tarball")
            == std::fs::read(image_dir().join("gatehouse.tar")).expect("tarball"),
        "the tarballs differ"
    );
}
