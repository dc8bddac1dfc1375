#!/usr/bin/env bash
# Builds the HashiCorp Vault binary that the end-to-end tests and the demo run as a dev server.
#
# The binary is built from the Go module in this folder (Vault's version is the one its go.mod
# requires; every module comes from the Go module proxy and is checked against go.sum) into
# <repo>/.cache/vault/vault-<version>, which git ignores. A stamp file beside the binary holds a
# SHA-256 of the build inputs, so the build runs only when the binary is missing or the pinned
# version, go.mod, go.sum, main.go or the build flags changed.
#
# Output: the binary's absolute path as the last line of stdout. Progress goes to stderr.
# Needs: Go 1.25.3 or newer on PATH. The first build downloads about 1 GB of modules and takes
# several minutes. Later runs print the cached path at once.
set -euo pipefail

module_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(cd "$module_dir/../.." && pwd)
cache_dir="$repo_dir/.cache/vault"

log() {
    echo "build-vault: $*" >&2
}

if ! command -v go >/dev/null 2>&1; then
    log "go not found on PATH: install Go 1.25.3 or newer and run this script again"
    exit 1
fi

# Matches both `require github.com/hashicorp/vault vX` and the line inside a require block.
version=$(sed -nE 's#^(require)?[[:space:]]*github\.com/hashicorp/vault v([^[:space:]]+).*#\2#p' "$module_dir/go.mod")
if [[ -z "$version" ]]; then
    log "no github.com/hashicorp/vault requirement found in $module_dir/go.mod"
    exit 1
fi
binary="$cache_dir/vault-$version"
stamp="$binary.inputs-sha256"

# The "minimal" tag is Vault's own core-only build (its Makefile's BUILD_MINIMAL): it keeps the
# dev server, the kv engine, leases and external plugins but leaves out the cloud-provider
# plugins, which would double the build time. CGO is off as in Vault's release builds, so no C
# compiler is needed.
build_flags=(-mod=readonly -trimpath -buildvcs=false -tags minimal -ldflags "-s -w")

inputs_sha256=$(
    {
        cat "$module_dir/go.mod" "$module_dir/go.sum" "$module_dir/main.go"
        printf '%s\n' "${build_flags[@]}"
    } | sha256sum | cut -d' ' -f1
)

mkdir -p "$cache_dir"

# Test binaries run in parallel and may all ask for Vault at once: the lock makes the later ones
# wait for the first build instead of starting their own.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$cache_dir/.build.lock"
    flock 9
fi

if [[ -x "$binary" && -f "$stamp" && "$(cat "$stamp")" == "$inputs_sha256" ]]; then
    log "vault $version is up to date"
    echo "$binary"
    exit 0
fi

log "building vault $version with $(go version) (several minutes on the first run)"
started=$(date +%s)

partial="$binary.partial.$$"
trap 'rm -f "$partial"' EXIT

# GOFLAGS and GOWORK are cleared so a developer's settings cannot change what gets built.
(
    cd "$module_dir"
    GOFLAGS='' GOWORK=off CGO_ENABLED=0 go build "${build_flags[@]}" -o "$partial" .
)

"$partial" version >&2
mv -f "$partial" "$binary"
echo "$inputs_sha256" >"$stamp"

log "built $binary in $(($(date +%s) - started)) s"
echo "$binary"
