# SPDX-License-Identifier: Apache-2.0
# Cross-compiling farm for Debian arm64 with Debian's cross toolchain
# (gcc-aarch64-linux-gnu) against a sysroot of arm64 packages made by build-debs.sh:
#   cmake -DCMAKE_TOOLCHAIN_FILE=deploy/packages/toolchain-aarch64.cmake -DFARM_SYSROOT=DIR
set(FARM_DEB_ARCH arm64)
set(FARM_TRIPLET aarch64-linux-gnu)
include(${CMAKE_CURRENT_LIST_DIR}/toolchain-common.cmake)
