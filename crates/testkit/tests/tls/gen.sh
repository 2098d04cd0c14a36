#!/bin/sh
# Regenerates the test certificates (EC P-256, valid until 2126 unless named otherwise).
# Run from this directory: sh gen.sh. Test-only keys: never use them anywhere else.
set -e
days=36500
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null; }
ca() {
  key "$1"
  openssl req -x509 -new -key "$1.key" -subj "/CN=$2" -days $days -out "$1.pem" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
}
# leaf NAME CA SUBJECT SANS EKU [openssl x509 validity options]
leaf() {
  name=$1 ca=$2 subj=$3 sans=$4 eku=$5; shift 5
  key "$name"
  openssl req -new -key "$name.key" -subj "/CN=$subj" -out "$name.csr"
  printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=%s\nsubjectAltName=%s\n' \
    "$eku" "$sans" > "$name.ext"
  # `openssl ca` rather than `x509 -req`: OpenSSL 3.0's x509 cannot set a validity in the past.
  mkdir -p ca.db && touch ca.db/index.txt && [ -f ca.db/serial ] || echo 1000 > ca.db/serial
  printf '[ca]\ndefault_ca=d\n[d]\ndatabase=ca.db/index.txt\nnew_certs_dir=ca.db\nserial=ca.db/serial\ndefault_md=sha256\npolicy=p\nunique_subject=no\n[p]\ncommonName=supplied\n' > ca.db/conf
  openssl ca -batch -config ca.db/conf -cert "$ca.pem" -keyfile "$ca.key" -in "$name.csr" -extfile "$name.ext" \
    -notext -out "$name.pem" "$@" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
}
ca ca "agw test CA"
ca other-ca "agw other test CA"
leaf localhost ca localhost "DNS:localhost,IP:127.0.0.1" serverAuth -days $days
leaf localhost2 ca "localhost (rotated)" "DNS:localhost,IP:127.0.0.1" serverAuth -days $days
leaf a ca a.example.com "DNS:a.example.com" serverAuth -days $days
leaf b ca "*.b.example.com" "DNS:*.b.example.com" serverAuth -days $days
leaf expired ca localhost "DNS:localhost,IP:127.0.0.1" serverAuth -startdate 20200101000000Z -enddate 20200201000000Z
leaf client ca alice "DNS:alice.clients.example.com,URI:spiffe://example.com/alice" clientAuth -days $days
leaf client-other other-ca mallory "DNS:mallory.clients.example.com" clientAuth -days $days
leaf upstream ca upstream.internal "DNS:upstream.internal,DNS:localhost,IP:127.0.0.1,URI:spiffe://example.com/upstream" serverAuth -days $days
rm -rf ca.db
