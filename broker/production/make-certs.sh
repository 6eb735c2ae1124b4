#!/bin/sh
# Make the TLS material for a kassa Mosquitto broker with client-certificate login.
#
#   make-certs.sh [--out DIR] [--days N] [--server-name NAME]... [DEVICE_ID]...
#
# Writes, under DIR (default ./kassa-pki), with two CAs that never sign for each other:
#   cloud-ca.key, cloud-ca.crt        the cloud CA: signs the broker and the cloud's accounts
#                                     (keep cloud-ca.key offline)
#   server.key, server.crt            the broker's certificate (cloud CA); subjectAltName lists
#                                     every --server-name (default: localhost and 127.0.0.1)
#   clients/kassa-cloud.key, .crt     the cloud workers' account (CN=kassa-cloud, cloud CA)
#   device-ca.key, device-ca.crt      the device CA: signs terminals only (the cloud's pairing
#                                     service holds this key, and only this one)
#   device-crl.pem                    the device CA's revocation list, empty (the broker's
#                                     device listener refuses every device without one)
#   clients/DEVICE_ID.key, .crt       one per device id given (CN=device id, device CA)
#
# Mosquitto's `use_identity_as_username true` turns the certificate's CN into the MQTT
# username, so the CN *is* the identity the ACL sees; which CA signed it decides the listener.
#
# Idempotent: a file that already exists is kept (CAs are reused, a device that already has a
# certificate keeps it), so re-running with more device ids only adds those. Delete a pair to
# re-issue it. Private keys are created with mode 0600.
set -eu

out=./kassa-pki
days=825
server_names=""
devices=""
cloud_cn=kassa-cloud

usage() {
    sed -n '2,26s/^# \{0,1\}//p' "$0"
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
    ''|*[!0-9]*|0) echo "make-certs.sh: --days must be a positive integer, got '$days'" >&2; exit 2 ;;
esac
[ -n "$server_names" ] || server_names="localhost 127.0.0.1"

# The CN becomes the MQTT username: it must be a valid kassa device id (docs/protocol.md), so
# it can never contain `+`, `#`, `/` or start with `$` (the broker's plugin refuses others too).
for id in $devices; do
    if ! printf '%s\n' "$id" | grep -Eq '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'; then
        echo "make-certs.sh: '$id' is not a valid device id (1-64 of A-Z a-z 0-9 . _ -, starting with a letter or digit)" >&2
        exit 2
    fi
    case "$(printf '%s' "$id" | tr 'A-Z' 'a-z')" in
        kassa-*)
            # The cloud's identities (kassa-cloud, kassa-ingest-1, ...) use this prefix: a device so
            # named would get the cloud's ACL entry or disconnect a worker with the same client id.
            echo "make-certs.sh: '$id': device ids starting with 'kassa-' are reserved for the cloud" >&2
            exit 2 ;;
    esac
done

command -v openssl >/dev/null || { echo "make-certs.sh: openssl is not installed (apt-get install openssl)" >&2; exit 1; }

if [ -e "$out/ca.key" ] && [ ! -e "$out/cloud-ca.key" ]; then
    # A PKI from before the CAs were split: one CA signed the broker, the cloud and devices.
    echo "make-certs.sh: $out holds a single-CA PKI (ca.key); see docs/deployment.md, 'Certificates', to move to a cloud CA and a device CA" >&2
    exit 1
fi

umask 077  # every file we create (keys above all) starts private
mkdir -p "$out/clients"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

new_key() {  # new_key PATH: an EC P-256 key, mode 0600
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
    chmod 0600 "$1"
}

# make_ca NAME SUBJECT_CN: $out/NAME.key and $out/NAME.crt, unless both exist.
make_ca() {
    name=$1 subject=$2
    if { [ -s "$out/$name.key" ] && [ ! -s "$out/$name.crt" ]; } || { [ ! -s "$out/$name.key" ] && [ -s "$out/$name.crt" ]; }; then
        echo "make-certs.sh: only one of $out/$name.key and $out/$name.crt exists; restore the other or remove both" >&2
        exit 1
    fi
    [ -s "$out/$name.key" ] && return
    new_key "$out/$name.key"
    openssl req -new -x509 -key "$out/$name.key" -sha256 -days "$days" \
        -subj "/O=kassa/CN=$subject" \
        -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "subjectKeyIdentifier=hash" \
        -out "$out/$name.crt"
    chmod 0644 "$out/$name.crt"
    echo "made CA $out/$name.crt"
}
make_ca cloud-ca "kassa cloud CA"
make_ca device-ca "kassa device CA"

# sign CA NAME CN EXTFILE: $out/NAME.key and $out/NAME.crt signed by CA, unless both exist.
sign() {
    ca=$1 name=$2 cn=$3 ext=$4
    if [ -s "$out/$name.key" ] && [ -s "$out/$name.crt" ]; then
        # Keep it only if the right CA signed it: a stale pair from another CA would fail at login.
        if ! openssl verify -CAfile "$out/$ca.crt" "$out/$name.crt" >/dev/null 2>&1; then
            echo "make-certs.sh: $out/$name.crt exists but does not verify against $out/$ca.crt; remove it to re-issue" >&2
            exit 1
        fi
        echo "kept $out/$name.crt"
        return
    fi
    new_key "$out/$name.key"
    openssl req -new -key "$out/$name.key" -subj "/O=kassa/CN=$cn" -out "$tmp/req.csr"
    # A random serial per certificate: no serial file to keep in step.
    openssl x509 -req -in "$tmp/req.csr" -CA "$out/$ca.crt" -CAkey "$out/$ca.key" \
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
sign cloud-ca server "$first_name" "$tmp/server.ext"

cat >"$tmp/client.ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth
EXT
sign cloud-ca "clients/$cloud_cn" "$cloud_cn" "$tmp/client.ext"
for id in $devices; do
    sign device-ca "clients/$id" "$id" "$tmp/client.ext"
done

# The device listener checks every device certificate against the device CA's CRL, and a
# listener with CRL checking refuses all devices while it has none: start with an empty one.
# After that the cloud owns the CRL (it adds revoked devices and re-signs it).
if [ ! -s "$out/device-crl.pem" ]; then
    : >"$tmp/index.txt"
    echo 00 >"$tmp/crlnumber"  # number 0: the cloud's first CRL (number 1) replaces it
    cat >"$tmp/ca.cnf" <<CNF
[ca]
default_ca = device_ca
[device_ca]
database = $tmp/index.txt
crlnumber = $tmp/crlnumber
default_md = sha256
default_crl_days = $days
CNF
    openssl ca -gencrl -config "$tmp/ca.cnf" -keyfile "$out/device-ca.key" -cert "$out/device-ca.crt" \
        -out "$out/device-crl.pem" 2>/dev/null
    chmod 0644 "$out/device-crl.pem"
    echo "made $out/device-crl.pem (no revoked certificates)"
fi
