# SPDX-License-Identifier: Apache-2.0
# Cross-compiling farm for Debian armhf (ARMv7, hard float) with Debian's cross toolchain
# (gcc-arm-linux-gnueabihf) against a sysroot of armhf packages made by build-debs.sh:
#   cmake -DCMAKE_TOOLCHAIN_FILE=deploy/packages/toolchain-armhf.cmake -DFARM_SYSROOT=DIR
set(FARM_DEB_ARCH armhf)
set(FARM_TRIPLET arm-linux-gnueabihf)
include(${CMAKE_CURRENT_LIST_DIR}/toolchain-common.cmake)
