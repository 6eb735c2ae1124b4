#!/bin/sh
# Fetch the device CA's CRL from the kassa cloud and hand it to the broker.
#
#   fetch-crl.sh --url URL --ca FILE --out FILE [--cacert FILE] [--reload-command CMD]
#
#   --url             the cloud's GET /pki/device-crl.pem (https://cloud.example.com/pki/device-crl.pem)
#   --ca              the device CA certificate the CRL must be signed by (device-ca.crt)
#   --out             the file the broker's device listener reads (crlfile in mosquitto.conf)
#   --cacert          CA bundle for the cloud's HTTPS certificate, when not a public CA
#   --reload-command  run after a new CRL was installed (default: systemctl reload mosquitto)
#
# Installs the CRL only when it is signed by the device CA and newer than the one in place
# (a higher CRL number: an old CRL replayed by a proxy cannot un-revoke a terminal), atomically
# and with mode 0644, then reloads the broker. Does nothing when the CRL has not changed, so a
# timer can run it every minute (systemd/kassa-broker-crl.timer). Exit 0 on success or no change.
set -eu

url="" ca="" out="" cacert="" reload="systemctl reload mosquitto"
while [ $# -gt 0 ]; do
    case "$1" in
        --url) url=${2:?--url needs a URL}; shift 2 ;;
        --ca) ca=${2:?--ca needs a file}; shift 2 ;;
        --out) out=${2:?--out needs a file}; shift 2 ;;
        --cacert) cacert=${2:?--cacert needs a file}; shift 2 ;;
        --reload-command) reload=${2:?--reload-command needs a command}; shift 2 ;;
        -h|--help) sed -n '2,15s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "fetch-crl.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ -n "$url" ] && [ -n "$ca" ] && [ -n "$out" ] || { echo "fetch-crl.sh: --url, --ca and --out are required" >&2; exit 2; }

tmp=$(mktemp "${out}.XXXXXX")
trap 'rm -f "$tmp"' EXIT
if ! curl -fsS --max-time 30 ${cacert:+--cacert "$cacert"} -o "$tmp" "$url"; then
    echo "fetch-crl.sh: could not fetch $url; the broker keeps its current CRL" >&2
    exit 1
fi
# `openssl crl -CAfile` prints "verify failure" for a CRL signed by another key and still exits
# 0 (OpenSSL 3.0): only its exact "verify OK" counts. A forged CRL in the broker's crlfile would
# fail every device's TLS handshake.
verdict=$(openssl crl -in "$tmp" -noout -CAfile "$ca" 2>&1) || true
if [ "$verdict" != "verify OK" ]; then
    echo "fetch-crl.sh: $url did not return a CRL signed by $ca ($(echo "$verdict" | head -1)); not installed" >&2
    exit 1
fi
next_update=$(openssl crl -in "$tmp" -noout -nextupdate | sed -n 's/^nextUpdate=//p')
if [ -z "$next_update" ] || [ "$(date -u -d "$next_update" +%s)" -le "$(date -u +%s)" ]; then
    # OpenSSL refuses every certificate of an issuer whose CRL is past its nextUpdate.
    echo "fetch-crl.sh: the CRL from $url is past its nextUpdate (${next_update:-none}); not installed: check the cloud's clock" >&2
    exit 1
fi
crl_number() {  # the CRL number as a decimal (0 when absent)
    hex=$(openssl crl -in "$1" -noout -crlnumber 2>/dev/null | sed -n 's/^crlNumber=0x//p')
    printf '%d\n' "0x${hex:-0}"
}
new=$(crl_number "$tmp")
if [ -s "$out" ]; then
    if cmp -s "$tmp" "$out"; then
        exit 0  # unchanged: nothing to reload
    fi
    old=$(crl_number "$out")
    if [ "$new" -le "$old" ]; then
        echo "fetch-crl.sh: the cloud's CRL number $new is not newer than the installed $old; not installed." >&2
        echo "  A restored cloud database or a CRL made by hand can cause this: compare with 'kassa-cloud pki crl';" >&2
        echo "  if the cloud's is right, copy it over $out by hand and reload the broker." >&2
        exit 1
    fi
fi
chmod 0644 "$tmp"
mv -f "$tmp" "$out"
trap - EXIT
echo "fetch-crl.sh: installed CRL number $new in $out"
sh -c "$reload"
