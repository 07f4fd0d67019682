#!/usr/bin/env bash
# Builds the Slurm of Debian 13 (trixie, Slurm 24.11: REST API v0.0.40 to v0.0.42) from
# its source package into a prefix, for the tests of the newer API versions on a machine
# whose Debian ships an older Slurm. Prints the prefix as its last line; does nothing
# (but print it) when that Slurm is already built there.
#
#   scripts/build-slurm.sh [PREFIX]      # default /opt/slurm-trixie
#
# The source comes from Debian's archive (deb.debian.org), checked against the signed
# InRelease file with Debian's archive keyring. Needs root to install the build
# dependencies when they are missing.
set -euo pipefail

PREFIX="${1:-/opt/slurm-trixie}"
MIRROR="${AIFACTORY_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE=trixie
WORK="${TMPDIR:-/tmp}/aifactory-slurm-build"

log() { echo "build-slurm: $*" >&2; }

# Built with slurmdbd's MySQL/MariaDB storage: the tests keep accounts in a real
# accounting database (a build from before that is built again).
if [[ -x "$PREFIX/sbin/slurmrestd" && -f "$PREFIX/.built" && -f "$PREFIX/lib/slurm/accounting_storage_mysql.so" ]]; then
    log "already built: $(cat "$PREFIX/.built")"
    echo "$PREFIX"
    exit 0
fi

deps=(build-essential libmariadb-dev libmunge-dev libhttp-parser-dev libjson-c-dev libyaml-dev libjwt-dev xz-utils curl gpgv debian-archive-keyring)
missing=()
for p in "${deps[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
    [[ $(id -u) -eq 0 ]] || { log "missing ${missing[*]}: run as root to install them"; exit 1; }
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

mkdir -p "$WORK"
cd "$WORK"
# The signed release file names the sources index with its checksum; the index names the
# upstream tarball with its own.
curl -fsS -o InRelease "$MIRROR/dists/$SUITE/InRelease"
gpgv --keyring /usr/share/keyrings/debian-archive-keyring.gpg InRelease 2>/dev/null ||
    { log "InRelease of $SUITE does not verify"; exit 1; }
index_sum=$(awk '/^SHA256:/{on=1; next} /^[A-Z]/{on=0} on && $3 == "main/source/Sources.xz" {print $1}' InRelease)
curl -fsS -o Sources.xz "$MIRROR/dists/$SUITE/main/source/Sources.xz"
echo "$index_sum  Sources.xz" | sha256sum -c --quiet - || { log "Sources.xz checksum mismatch"; exit 1; }
# (awk reads to the end: leaving early would break the pipe under pipefail)
stanza=$(xz -dc Sources.xz | awk '/^Package: slurm-wlm$/ && !seen {on=1; seen=1} on && /^$/ {on=0} on')
version=$(awk '/^Version:/{print $2}' <<<"$stanza")
read -r sum _ tarball < <(awk '/^Checksums-Sha256:/{on=1; next} /^[A-Z]/{on=0} on && /orig\.tar/ {print $1, $2, $3}' <<<"$stanza")
[[ -n "${tarball:-}" ]] || { log "no slurm-wlm source in $SUITE"; exit 1; }
log "Slurm $version from $SUITE ($tarball)"
directory=$(awk '/^Directory:/{print $2}' <<<"$stanza")
[[ -f "$tarball" ]] || curl -fsS -o "$tarball" "$MIRROR/$directory/$tarball"
echo "$sum  $tarball" | sha256sum -c --quiet - || { log "$tarball checksum mismatch"; rm -f "$tarball"; exit 1; }

rm -rf src && mkdir src
tar -xzf "$tarball" -C src --strip-components=1
cd src
log "configuring and building into $PREFIX (several minutes on two cores)"
./configure --prefix="$PREFIX" --sysconfdir="$PREFIX/etc" --with-munge --with-http-parser --with-json \
    --with-yaml --with-jwt --with-mysql_config=/usr/bin --without-hdf5 --without-rpath --disable-debug >"$WORK/configure.log" 2>&1 ||
    { tail -n 30 "$WORK/configure.log" >&2; exit 1; }
make -j"$(nproc)" >"$WORK/make.log" 2>&1 || { tail -n 30 "$WORK/make.log" >&2; exit 1; }
make install >"$WORK/install.log" 2>&1 || { tail -n 30 "$WORK/install.log" >&2; exit 1; }
[[ -f "$PREFIX/lib/slurm/accounting_storage_mysql.so" ]] ||
    { log "built without slurmdbd's MySQL storage; see $WORK/configure.log"; exit 1; }
echo "$version" >"$PREFIX/.built"
log "built Slurm $version"
echo "$PREFIX"
