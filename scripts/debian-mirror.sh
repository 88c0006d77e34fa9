# shellcheck shell=bash
# Sourced by the build scripts: the Debian mirror this machine's apt already uses, so no mirror
# host name is ever written into the repository. The first non-security `URIs:` of
# /etc/apt/sources.list.d/debian.sources (else the first `deb` line of /etc/apt/sources.list);
# EXTMERGE_MIRROR overrides it. The caller provides `die`.
debian_mirror() {
    if [[ -n ${EXTMERGE_MIRROR:-} ]]; then
        echo "$EXTMERGE_MIRROR"
        return
    fi
    local src=/etc/apt/sources.list.d/debian.sources uri=""
    if [[ -r $src ]]; then
        uri=$(sed -n 's/^URIs:[[:space:]]*//p' "$src" | tr ' ' '\n' | grep -v -- '-security' | grep -m1 . || true)
    fi
    if [[ -z $uri && -r /etc/apt/sources.list ]]; then
        uri=$(awk '$1=="deb" && $0 !~ /security/ { for (i=2;i<=NF;i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' /etc/apt/sources.list)
    fi
    [[ -n $uri ]] || die "cannot find the Debian mirror: no URIs: line in $src (set EXTMERGE_MIRROR)"
    echo "$uri"
}
