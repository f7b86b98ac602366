#!/usr/bin/env bash
# Generates a throw-away test PKI with the openssl CLI into the folder given as $1 (created if missing).
# Nothing here is committed: every test run makes its own keys.
#   ca.pem/key            "AzureIoT Test Root CA"
#   inter.pem/key         "AzureIoT Test Intermediate CA", signed by the root, pathlen 0
#   rogue-ca.pem/key      an unrelated root nobody trusts
#   server.pem/key        CN=localhost, SAN DNS:localhost, IP:127.0.0.1, signed by the root
#   wronghost.pem/key     CN=other.example, SAN DNS:other.example, signed by the root
#   expired.pem/key       CN=localhost, SAN as server, valid 2020-01-01..2021-01-01, signed by the root
#   dev1.pem/key          CN=dev1, clientAuth, signed by the root (RSA)
#   dev2.pem/key          CN=dev2, clientAuth, signed by the intermediate (EC P-256); dev2-chain.pem = leaf + inter
#   dev3-enc.key          dev1's key encrypted with passphrase "test-passphrase"
set -euo pipefail
out=${1:?usage: make-test-pki.sh OUTDIR}
mkdir -p "$out"
cd "$out"
exec 3>&2 2>openssl.log

inter_ext=$'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid:always'
server_ext=$'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1'
wrong_ext=$'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:other.example'
client_ext=$'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth'

root() { # name cn
  openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 -keyout "$1.key" -out "$1.pem" -subj "/CN=$2" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
}
leaf() { # name cn issuer ext keyalg
  if [ "$5" = ec ]; then
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" -out "$1.csr" -subj "/CN=$2"
  else
    openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "/CN=$2"
  fi
  printf '%s\n' "$4" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -CAcreateserial -days 825 -sha256 \
    -extfile "$1.ext" -out "$1.pem"
}

root ca "AzureIoT Test Root CA"
root rogue-ca "AzureIoT Rogue CA"
leaf inter "AzureIoT Test Intermediate CA" ca "$inter_ext" rsa
leaf server localhost ca "$server_ext" rsa
leaf wronghost other.example ca "$wrong_ext" rsa
leaf dev1 dev1 ca "$client_ext" rsa
leaf dev2 dev2 inter "$client_ext" ec
cat dev2.pem inter.pem > dev2-chain.pem
openssl pkey -in dev1.key -aes256 -passout pass:test-passphrase -out dev3-enc.key

# An expired server certificate needs explicit dates, which only `openssl ca` takes on OpenSSL 3.0.
mkdir -p ca-db && : > ca-db/index.txt && echo 1000 > ca-db/serial
cat > ca-db/ca.cnf <<CNF
[ ca ]
default_ca = test_ca
[ test_ca ]
dir = ca-db
database = ca-db/index.txt
serial = ca-db/serial
new_certs_dir = ca-db
default_md = sha256
policy = any
unique_subject = no
copy_extensions = none
x509_extensions = server_ext
[ any ]
commonName = supplied
[ server_ext ]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
CNF
openssl req -newkey rsa:2048 -nodes -keyout expired.key -out expired.csr -subj "/CN=localhost"
openssl ca -batch -config ca-db/ca.cnf -cert ca.pem -keyfile ca.key -in expired.csr -notext \
  -startdate 20200101000000Z -enddate 20210101000000Z -out expired.pem
chmod 644 ./*.key
exec 2>&3
echo "test PKI ready in $out"
