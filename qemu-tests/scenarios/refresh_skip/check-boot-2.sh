#!/bin/bash
# refresh_skip, boot 2 of the same disk (nothing changed): the same checks as boot 1.
. ./check-boot-1.sh
