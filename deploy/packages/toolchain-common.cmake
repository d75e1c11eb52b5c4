# SPDX-License-Identifier: Apache-2.0
# Shared by toolchain-aarch64.cmake and toolchain-armhf.cmake (which set FARM_DEB_ARCH and
# FARM_TRIPLET). FARM_SYSROOT is a directory holding the target's -dev packages unpacked
# (dpkg -x), multiarch layout: usr/include/TRIPLET, usr/lib/TRIPLET, lib/TRIPLET.
# The libraries are not installed as :arm64/:armhf packages on the build host, so the
# host's amd64 library versions never have to match the foreign ones (Multi-Arch: same).
set(CMAKE_SYSTEM_NAME Linux)
if(FARM_DEB_ARCH STREQUAL "arm64")
  set(CMAKE_SYSTEM_PROCESSOR aarch64)
else()
  set(CMAKE_SYSTEM_PROCESSOR armv7l)
endif()
set(CMAKE_C_COMPILER ${FARM_TRIPLET}-gcc)
set(CMAKE_STRIP ${FARM_TRIPLET}-strip CACHE FILEPATH "")

# try_compile runs in a separate project: pass the sysroot on to it
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES FARM_SYSROOT FARM_DEB_ARCH FARM_TRIPLET)
if(NOT FARM_SYSROOT)
  set(FARM_SYSROOT $ENV{FARM_SYSROOT})
endif()
if(NOT FARM_SYSROOT OR NOT IS_DIRECTORY "${FARM_SYSROOT}/usr/lib/${FARM_TRIPLET}")
  message(FATAL_ERROR "FARM_SYSROOT (${FARM_SYSROOT}) is not a ${FARM_DEB_ARCH} sysroot: "
                      "deploy/packages/build-debs.sh makes one")
endif()
set(CMAKE_SYSROOT ${FARM_SYSROOT})
set(CMAKE_FIND_ROOT_PATH ${FARM_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)   # protoc-c is the build host's
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# pkg-config reads only the target's .pc files and prefixes their paths with the sysroot
set(ENV{PKG_CONFIG_DIR} "")
set(ENV{PKG_CONFIG_LIBDIR}
    "${FARM_SYSROOT}/usr/lib/${FARM_TRIPLET}/pkgconfig:${FARM_SYSROOT}/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_SYSROOT_DIR} ${FARM_SYSROOT})
set(PKG_CONFIG_EXECUTABLE /usr/bin/pkg-config CACHE FILEPATH "")
