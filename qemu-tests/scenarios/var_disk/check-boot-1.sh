#!/bin/bash
# var_disk, boot 1: /var from systemd.mount-extra=LABEL=extvar:/var:ext4:defaults.
. ./checklib.sh
. ./check-var.sh
check_var_disk "systemd.mount-extra=LABEL=extvar:/var:ext4:defaults"
finish
