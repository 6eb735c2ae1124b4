#!/bin/sh
# Make the TLS material for a kassa Mosquitto broker with client-certificate login.
#
#   make-certs.sh [--out DIR] [--days N] [--server-name NAME]... [DEVICE_ID]...
#
# Writes, under DIR (default ./kassa-pki):
#   ca.key, ca.crt                    the private CA (keep ca.key offline in production)
#   server.key, server.crt            the broker's certificate; subjectAltName lists every
#                                     --server-name (default: localhost and 127.0.0.1)
#   clients/kassa-cloud.key, .crt     the cloud workers' account (CN=kassa-cloud)
#   clients/DEVICE_ID.key, .crt       one per device id given (CN=device id)
#
# Mosquitto's `use_identity_as_username true` turns the certificate's CN into the MQTT
# username, so the CN *is* the identity the ACL file sees.
#
# Idempotent: a file that already exists is kept (the CA is reused, a device that already
# has a certificate keeps it), so re-running with more device ids only adds those. Delete a
# pair to re-issue it. Private keys are created with mode 0600.
set -eu

out=./kassa-pki
days=825
server_names=""
devices=""
cloud_cn=kassa-cloud

usage() {
    sed -n '2,20s/^# \{0,1\}//p' "$0"
    exit "${1:-0}"
}

while [ $# -gt 0 ]; do
    case "$1" in
        --out) out=${2:?--out needs a directory}; shift 2 ;;
        --out=*) out=${1#*=}; shift ;;
        --days) days=${2:?--days needs a number}; shift 2 ;;
        --days=*) days=${1#*=}; shift ;;
        --server-name) server_names="$server_names ${2:?--server-name needs a name}"; shift 2 ;;
        --server-name=*) server_names="$server_names ${1#*=}"; shift ;;
        -h|--help) usage 0 ;;
        --) shift; devices="$devices $*"; break ;;
        -*) echo "make-certs.sh: unknown option $1" >&2; usage 2 >&2 ;;
        *) devices="$devices $1"; shift ;;
    esac
done

case "$days" in
    ''|*[!0-9]*) echo "make-certs.sh: --days must be a positive integer, got '$days'" >&2; exit 2 ;;
esac
[ -n "$server_names" ] || server_names="localhost 127.0.0.1"

# The CN becomes the MQTT username that `%u` expands to in the ACL: it must be a valid kassa
# device id (docs/protocol.md), so it can never contain `+`, `#`, `/` or start with `$`.
for id in $devices; do
    if ! printf '%s\n' "$id" | grep -Eq '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'; then
        echo "make-certs.sh: '$id' is not a valid device id (1-64 of A-Z a-z 0-9 . _ -, starting with a letter or digit)" >&2
        exit 2
    fi
    if [ "$id" = "$cloud_cn" ]; then
        # A device with this CN would log in as the cloud and read every device's messages.
        echo "make-certs.sh: '$cloud_cn' is the cloud's account and cannot be a device id" >&2
        exit 2
    fi
done

command -v openssl >/dev/null || { echo "make-certs.sh: openssl is not installed (apt-get install openssl)" >&2; exit 1; }

umask 077  # every file we create (keys above all) starts private
mkdir -p "$out/clients"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

new_key() {  # new_key PATH: an EC P-256 key, mode 0600
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
    chmod 0600 "$1"
}

if { [ -s "$out/ca.key" ] && [ ! -s "$out/ca.crt" ]; } || { [ ! -s "$out/ca.key" ] && [ -s "$out/ca.crt" ]; }; then
    echo "make-certs.sh: only one of $out/ca.key and $out/ca.crt exists; restore the other or remove both" >&2
    exit 1
fi
if [ ! -s "$out/ca.key" ]; then
    new_key "$out/ca.key"
    openssl req -new -x509 -key "$out/ca.key" -sha256 -days "$days" \
        -subj "/O=kassa/CN=kassa broker CA" \
        -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "subjectKeyIdentifier=hash" \
        -out "$out/ca.crt"
    chmod 0644 "$out/ca.crt"
    echo "made CA $out/ca.crt"
fi

# sign NAME CN EXTFILE: $out/NAME.key and $out/NAME.crt signed by the CA, unless both exist.
sign() {
    name=$1 cn=$2 ext=$3
    if [ -s "$out/$name.key" ] && [ -s "$out/$name.crt" ]; then
        # Keep it only if our CA signed it: a stale pair from another CA would fail at login.
        if ! openssl verify -CAfile "$out/ca.crt" "$out/$name.crt" >/dev/null 2>&1; then
            echo "make-certs.sh: $out/$name.crt exists but does not verify against $out/ca.crt; remove it to re-issue" >&2
            exit 1
        fi
        echo "kept $out/$name.crt"
        return
    fi
    new_key "$out/$name.key"
    openssl req -new -key "$out/$name.key" -subj "/O=kassa/CN=$cn" -out "$tmp/req.csr"
    # A random serial per certificate: no serial file to keep in step.
    openssl x509 -req -in "$tmp/req.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" \
        -set_serial "0x$(openssl rand -hex 16)" -days "$days" -sha256 \
        -extfile "$ext" -out "$out/$name.crt" 2>/dev/null
    chmod 0644 "$out/$name.crt"
    echo "made $out/$name.crt (CN=$cn)"
}

san=""
for name in $server_names; do
    if printf '%s\n' "$name" | grep -Eq '^[0-9.]+$|:'; then
        san="$san,IP:$name"
    else
        san="$san,DNS:$name"
    fi
done
first_name=$(echo $server_names | cut -d' ' -f1)
cat >"$tmp/server.ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=${san#,}
EXT
sign server "$first_name" "$tmp/server.ext"

cat >"$tmp/client.ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth
EXT
sign "clients/$cloud_cn" "$cloud_cn" "$tmp/client.ext"
for id in $devices; do
    sign "clients/$id" "$id" "$tmp/client.ext"
done
