#!/bin/bash
# First boot: everything the Ignition stub placed is merged by the initrd.
. ./checklib.sh
. ./samples.sh
check_samples_merged
finish
