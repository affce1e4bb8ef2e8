#!/usr/bin/env bash
# The main job: install, start the embedded S3 store, mount its bucket, and show it works.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

MOUNTPOINT=${OBJMOUNT_MOUNTPOINT:-/mnt/objmount}
objmount=.venv/bin/objmount
$objmount server start
# Point at the embedded store explicitly, whatever AWS settings this shell has.
unset AWS_PROFILE AWS_ENDPOINT_URL_S3 AWS_SESSION_TOKEN
eval "$($objmount server status | sed -n 's/^ *export /export /p')"

# Direct interception: no mount, no root needed; any dynamically linked program.
$objmount run -- bash -c '
  mkdir -p /objmount/s3/objmount/hello
  date > /objmount/s3/objmount/hello/intercepted.txt
  cp -r /usr/share/doc/bash /objmount/s3/objmount/hello/
  ls -l /objmount/s3/objmount/hello'

# The same bucket through the kernel, as a FUSE mount.
mkdir -p "$MOUNTPOINT"
if ! mountpoint -q "$MOUNTPOINT"; then
  $objmount mount s3://objmount "$MOUNTPOINT"
fi
date > "$MOUNTPOINT/hello/world.txt"
ls -l "$MOUNTPOINT" "$MOUNTPOINT/hello"
cat <<TXT

objmount is running on bucket s3://objmount of the embedded store.
  a shell where object paths work (no mount):   $(pwd)/$objmount shell
      then e.g.  cp -r ~/somedir /objmount/s3/objmount/ ; ls -l s3://objmount/
  one command:       $(pwd)/$objmount run -- tar -C /objmount/s3/objmount -czf /tmp/b.tgz hello
  the FUSE mount:    $MOUNTPOINT  (cp -a ~/somedir $MOUNTPOINT/)
  status:            $(pwd)/$objmount status   (cache, requests, bytes of each mount and daemon)
  unmount:           $(pwd)/$objmount umount $MOUNTPOINT
  stop the store:    $(pwd)/$objmount daemon stop; $(pwd)/$objmount server stop
TXT
