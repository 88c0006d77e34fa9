#!/bin/bash
# var_disk, boot 2: rd.extmerge.var=PARTUUID=… wins in the initrd (same filesystem).
. ./checklib.sh
. ./check-var.sh
check_var_disk "rd.extmerge.var=PARTUUID=6f1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b"
finish
