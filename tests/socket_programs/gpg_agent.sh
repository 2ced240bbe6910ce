#!/bin/sh
# GnuPG in a fresh home (DIR): gpg starts gpg-agent, which it asks over its unix socket
# (Assuan) to make an Ed25519 key and to sign; the signature verified, the agent stopped.
set -e
export GNUPGHOME="$1/gnupg"
mkdir -m 700 "$GNUPGHOME"
gpg --batch --quiet --passphrase '' --quick-gen-key 'Test <t@example.com>' ed25519 sign never 2>/dev/null
echo hello > "$GNUPGHOME/f"
gpg --batch --quiet --yes --detach-sign "$GNUPGHOME/f" 2>/dev/null
gpg --batch --verify "$GNUPGHOME/f.sig" "$GNUPGHOME/f" 2>&1 | grep -c "Good signature"
gpg --batch --list-keys --with-colons 2>/dev/null | grep -c '^pub:u:255:22:'
gpgconf --kill gpg-agent
echo done
