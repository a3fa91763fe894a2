#!/usr/bin/env bash
# Builds the operator's OCI image without a container daemon (`make image`): the release binary
# (cargo build --release --locked; CARGO_TARGET_DIR is honoured) at /gatehouse, plus what
# distroless/cc-debian12 carries that it needs: the shared libraries it loads (its NEEDED closure
# per ldd, at the paths the Debian packages install them, and the dynamic loader), the Debian CA
# bundle (notifications use rustls with the native roots), distroless' users, /home/nonroot and
# /tmp. hack/image/main.go assembles it with go-containerregistry (the module hack/crane pins).
#
# Writes target/image/gatehouse.tar under the repository (not CARGO_TARGET_DIR, so the path is
# stable; GATEHOUSE_IMAGE_DIR overrides the directory): a docker-archive tagged
# gatehouse:<Cargo.toml version>, the reference deploy/ and the chart use by default, plus
# gatehouse.digest (the manifest digest `crane push` yields). Rebuilt only when an input changed.
# GATEHOUSE_IMAGE_BINARY uses that binary instead of building one; GATEHOUSE_IMAGE_TAG writes
# another tag. Every mtime is SOURCE_DATE_EPOCH (default 0), so the same inputs give the same digest.
# Prints the tarball's path on stdout; progress goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${GATEHOUSE_CACHE:-$HOME/.cache/gatehouse}
outdir=${GATEHOUSE_IMAGE_DIR:-$root/target/image}
epoch=${SOURCE_DATE_EPOCH:-0}

log() { printf 'image: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

command -v go >/dev/null || die "go is not installed: install the Go toolchain (1.26+) and retry"
command -v dpkg-query >/dev/null || die "dpkg-query not found: the image takes its libraries from a Debian (bookworm) host"
if [[ ! -s /etc/ssl/certs/ca-certificates.crt ]]; then
  [[ $(id -u) == 0 ]] || die "/etc/ssl/certs/ca-certificates.crt is missing: apt-get install ca-certificates"
  log "installing ca-certificates (the image's CA bundle) ..."
  apt-get install -y -qq ca-certificates >&2
fi

# The assembler, cached like hack/crane: keyed by its module files and the Go version.
tool_key=$( (cat "$here/go.mod" "$here/go.sum" "$here/main.go"; go version) | sha256sum | cut -c1-16)
tool="$cache/bin/image-$tool_key/image"
if [[ ! -x $tool ]]; then
  log "building the image assembler (first time for this version) ..."
  mkdir -p "$(dirname "$tool")"
  (cd "$here" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$tool.tmp.$$" .)
  mv "$tool.tmp.$$" "$tool"
fi

if [[ -n ${GATEHOUSE_IMAGE_BINARY:-} ]]; then
  binary=$GATEHOUSE_IMAGE_BINARY
else
  start=$SECONDS
  (cd "$root" && cargo build --release --locked --bin gatehouse >&2)
  binary=${CARGO_TARGET_DIR:-$root/target}/release/gatehouse
  log "release binary ready in $((SECONDS - start))s"
fi
[[ -x $binary ]] || die "$binary is not an executable"

# The one source of the version: Cargo.toml's [package] version (tests/image.rs checks that the
# chart's appVersion and deploy/'s image agree).
version=$(sed -n '/^\[package\]/,/^\[/s/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml")
[[ -n $version ]] || die "no [package] version in $root/Cargo.toml"
# GATEHOUSE_IMAGE_TAG tags the same contents otherwise, e.g. a second image for an upgrade test
# (with its own GATEHOUSE_IMAGE_DIR).
tag=${GATEHOUSE_IMAGE_TAG:-gatehouse:$version}
arch=$(dpkg --print-architecture)

# debian_path PATH: the path a Debian package installs PATH's file at: PATH itself if a package
# owns it, else the packaged path of the same name, kind (symlink or not) and resolved file (on a
# merged-/usr host ldd may name /usr/lib/... where the package, and distroless, have /lib/...).
# Fails if no package owns it.
debian_path() {
  local want candidate
  if dpkg-query -S "$1" >/dev/null 2>&1; then
    echo "$1"
    return
  fi
  want=$(readlink -f "$1")
  while read -r candidate; do
    if [[ $(basename "$candidate") == "$(basename "$1")" && $(readlink -f "$candidate") == "$want" ]] &&
      { [[ -L $candidate && -L $1 ]] || [[ ! -L $candidate && ! -L $1 ]]; }; then
      echo "$candidate"
      return
    fi
  done < <(dpkg-query -S "*/$(basename "$1")" 2>/dev/null | sed 's/^[^:]*:[^:]*: //')
  die "no Debian package owns $1 (needed by $binary): install its package"
}

# The NEEDED closure of the binary, loader included (ldd's lines `name => /path (addr)` and
# `/path (addr)`; linux-vdso is the kernel's).
files=()
while read -r lib; do
  path=$(debian_path "$lib")
  files+=("$path")
  # A symlink (the loader at /lib64) and the file it names.
  if [[ -L $path ]]; then
    files+=("$(debian_path "$(readlink -f "$path")")")
  fi
done < <(ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
[[ ${#files[@]} -gt 0 ]] || die "ldd found no shared libraries in $binary: is it the dynamically linked release build?"
if ldd "$binary" | grep -q 'not found'; then
  die "$binary needs libraries this host lacks: $(ldd "$binary" | grep 'not found' | tr -s ' \t' ' ')"
fi
files+=(/etc/ssl/certs/ca-certificates.crt)
mapfile -t files < <(printf '%s\n' "${files[@]}" | sort -u)

# Everything the image is made of, hashed: the tarball is rebuilt only when this changes.
inputs=$(
  printf 'tool %s\ntag %s\narch %s\nepoch %s\nbinary %s\n' "$tool_key" "$tag" "$arch" "$epoch" "$(sha256sum <"$binary" | cut -d' ' -f1)"
  for f in "${files[@]}"; do
    if [[ -L $f ]]; then printf '%s -> %s\n' "$f" "$(readlink "$f")"; else printf '%s %s %s\n' "$f" "$(stat -c %a "$f")" "$(sha256sum <"$f" | cut -d' ' -f1)"; fi
  done
)
key=$(sha256sum <<<"$inputs" | cut -d' ' -f1)
tarball=$outdir/gatehouse.tar
if [[ -f $tarball && -f $outdir/gatehouse.digest && $(cat "$outdir/inputs.sha256" 2>/dev/null) == "$key" ]]; then
  log "up to date: $tag $(cat "$outdir/gatehouse.digest") at $tarball"
  echo "$tarball"
  exit 0
fi

mkdir -p "$outdir"
rm -f "$outdir/inputs.sha256"
log "assembling $tag from $binary and ${#files[@]} host files: ${files[*]}"
start=$SECONDS
host_args=()
for f in "${files[@]}"; do host_args+=(-host-file "$f"); done
read -r digest id < <("$tool" -binary "$binary" -tag "$tag" -arch "$arch" -epoch "$epoch" -out "$tarball" "${host_args[@]}")
echo "$digest" >"$outdir/gatehouse.digest"
echo "$key" >"$outdir/inputs.sha256"
log "assembled $tag in $((SECONDS - start))s: manifest $digest, image ID $id, $(du -h "$tarball" | cut -f1) at $tarball"
echo "$tarball"
