#!/bin/bash
# First boot: everything the Ignition stub placed is merged by the initrd.
. ./checklib.sh
. ./samples.sh
check_samples_merged
# Each initrd unit ran its steps in one process (stage 2: oem-mount, mount-var, flatcar-select,
# both refreshes).
check_one_process extmerge-sysroot-early.service
check_one_process extmerge-sysroot.service
finish
