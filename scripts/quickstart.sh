#!/usr/bin/env bash
# The main job: install, start the embedded S3 store, mount its bucket, and show it works.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

MOUNTPOINT=${OBJMOUNT_MOUNTPOINT:-/mnt/objmount}
objmount=.venv/bin/objmount
$objmount server start
mkdir -p "$MOUNTPOINT"
if ! mountpoint -q "$MOUNTPOINT"; then
  # Point at the embedded store explicitly, whatever AWS settings this shell has.
  unset AWS_PROFILE AWS_ENDPOINT_URL_S3 AWS_SESSION_TOKEN
  eval "$($objmount server status | sed -n 's/^ *export /export /p')"
  $objmount mount s3://objmount "$MOUNTPOINT"
fi
mkdir -p "$MOUNTPOINT/hello"
date > "$MOUNTPOINT/hello/world.txt"
ls -l "$MOUNTPOINT" "$MOUNTPOINT/hello"
cat <<TXT

objmount is running: bucket s3://objmount of the embedded store is mounted on $MOUNTPOINT.
  work in it:        cp -a ~/somedir $MOUNTPOINT/
  unmount:           $(pwd)/$objmount umount $MOUNTPOINT
  stop the store:    $(pwd)/$objmount server stop
TXT
