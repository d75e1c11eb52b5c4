# SPDX-License-Identifier: Apache-2.0
# Install rules and Debian packages: one component per package, built by CPack's DEB
# generator (deploy/packages/build-debs.sh runs it for amd64, arm64 and armhf).
#
#   cmake -S . -B build-deb -DFARM_BUILD_TESTS=OFF -DCMAKE_INSTALL_PREFIX=/usr \
#         [-DCMAKE_TOOLCHAIN_FILE=deploy/packages/toolchain-aarch64.cmake]
#   cmake --build build-deb && (cd build-deb && cpack -G DEB)
#
# writes farm-coordinator_VERSION-1_ARCH.deb, farm-agent_... and farmctl_... .

include(GNUInstallDirs)
set(FARM_PKG_DIR ${CMAKE_CURRENT_LIST_DIR})
set(FARM_SYSTEMD_DIR ${CMAKE_CURRENT_LIST_DIR}/../systemd)

install(TARGETS farm-coordinator RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT coordinator)
install(TARGETS farm-agent RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT agent)
install(TARGETS farmctl RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT farmctl)

# Debian keeps units of packages in /lib/systemd/system (bookworm is not usr-merged in
# packages); the settings each unit reads go to /etc/default as conffiles.
install(FILES ${FARM_SYSTEMD_DIR}/farm-coordinator.service
        DESTINATION /lib/systemd/system COMPONENT coordinator)
install(FILES ${FARM_SYSTEMD_DIR}/farm-coordinator.default
        DESTINATION /etc/default RENAME farm-coordinator COMPONENT coordinator)
install(FILES ${FARM_SYSTEMD_DIR}/farm-agent.service
        DESTINATION /lib/systemd/system COMPONENT agent)
install(FILES ${FARM_SYSTEMD_DIR}/farm-agent.default
        DESTINATION /etc/default RENAME farm-agent COMPONENT agent)
install(FILES ${FARM_PKG_DIR}/debian/README.Debian.agent
        DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/farm-agent RENAME README.Debian COMPONENT agent)
install(FILES ${FARM_PKG_DIR}/debian/farm.yaml.example
        DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/farm-coordinator COMPONENT coordinator)
# Debian's changelog, compressed as policy wants it (gzip -9n: no name, no time stamp)
set(FARM_CHANGELOG_GZ ${CMAKE_BINARY_DIR}/debian/changelog.Debian.gz)
add_custom_command(OUTPUT ${FARM_CHANGELOG_GZ}
  COMMAND gzip -9nc ${FARM_PKG_DIR}/debian/changelog > ${FARM_CHANGELOG_GZ}
  DEPENDS ${FARM_PKG_DIR}/debian/changelog)
add_custom_target(farm_changelog ALL DEPENDS ${FARM_CHANGELOG_GZ})
foreach(comp coordinator agent farmctl)
  if(comp STREQUAL "farmctl")
    set(pkg farmctl)
  else()
    set(pkg farm-${comp})
  endif()
  install(FILES ${FARM_PKG_DIR}/debian/copyright ${FARM_CHANGELOG_GZ}
          DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/${pkg} COMPONENT ${comp})
endforeach()

# Maintainer scripts: one template per script (deploy/packages/debian/*.in), filled in for
# each daemon's package.
function(farm_maint_scripts comp)
  cmake_parse_arguments(M "" "PKG;USER;HOME;CONF;SUBIDS;SUBDIRS;GECOS;NEXT" "" ${ARGN})
  set(PKG ${M_PKG})
  set(USER ${M_USER})
  set(HOME ${M_HOME})
  set(CONF ${M_CONF})
  set(SUBIDS ${M_SUBIDS})
  set(SUBDIRS "${M_SUBDIRS}")
  set(GECOS "${M_GECOS}")
  set(NEXT "${M_NEXT}")
  set(RECORD /var/lib/misc/${M_PKG}.created)
  set(ETC /etc/farm)
  set(ETC_RECORD /var/lib/misc/farm-etc.created)
  if(M_SUBIDS GREATER 0)
    set(SUBIDS_NOTE "its subordinate uid/gid ranges (${M_SUBIDS} each), ")
  else()
    set(SUBIDS_NOTE "")
  endif()
  set(out ${CMAKE_BINARY_DIR}/debian/${comp})
  foreach(f postinst prerm postrm conffiles)
    configure_file(${FARM_PKG_DIR}/debian/${f}.in ${out}/${f} @ONLY
                   FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ
                   GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
  endforeach()
  file(CHMOD ${out}/conffiles PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
  string(TOUPPER ${comp} C)
  set(CPACK_DEBIAN_${C}_PACKAGE_CONTROL_EXTRA ${out}/postinst ${out}/prerm ${out}/postrm
      ${out}/conffiles PARENT_SCOPE)
  set(CPACK_DEBIAN_${C}_PACKAGE_CONTROL_STRICT_PERMISSION ON PARENT_SCOPE)
endfunction()

farm_maint_scripts(agent PKG farm-agent USER farm HOME /var/lib/farm-agent CONF /etc/farm/agent
  SUBIDS 65536 SUBDIRS "work builder" GECOS "farm build agent"
  NEXT "set FARM_COORDINATOR and FARM_NAME in /etc/default/farm-agent, put the keys in /etc/farm/agent, run farm-agent check, then systemctl enable --now farm-agent (see /usr/share/doc/farm-agent/README.Debian)")
farm_maint_scripts(coordinator PKG farm-coordinator USER farm-coordinator
  HOME /var/lib/farm-coordinator CONF /etc/farm/coordinator SUBIDS 0 SUBDIRS ""
  GECOS "farm coordinator"
  NEXT "write /etc/farm/farm.yaml (example: /usr/share/doc/farm-coordinator/farm.yaml.example), then systemctl enable --now farm-coordinator")

# --- CPack ------------------------------------------------------------------------------

# The Debian architecture: the toolchain file's FARM_DEB_ARCH, else this host's.
if(NOT FARM_DEB_ARCH)
  execute_process(COMMAND dpkg --print-architecture OUTPUT_VARIABLE FARM_DEB_ARCH
                  OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
endif()

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME farm)
set(CPACK_PACKAGE_VENDOR "farm")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "farm maintainers <maintainers@farm.invalid>")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_PACKAGE_DIRECTORY ${CMAKE_BINARY_DIR}/packages)
set(CPACK_COMPONENTS_ALL coordinator agent farmctl)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_ARCHITECTURE ${FARM_DEB_ARCH})
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://farm.invalid/")
# Directories such as /usr/bin are the base system's: leave their modes to it.
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS OFF)

# The libraries each program links, as dpkg-shlibdeps says for the amd64 build on
# bookworm (the same libraries and symbol versions on arm64 and armhf). Listed rather than
# computed: dpkg-shlibdeps cannot look up a cross build's libraries, which live in a
# sysroot, not in dpkg's database. test_packages checks these against dpkg-shlibdeps.
# (Built as PIE, the daemons import protobuf_c_empty_string, new in libprotobuf-c 1.3.1,
# instead of copying it into the executable.)
set(FARM_DEB_LIBS_coordinator "libc6 (>= 2.34), libcurl4 (>= 7.63.0), libjansson4 (>= 2.14), libmicrohttpd12 (>= 0.9.61), libprotobuf-c1 (>= 1.3.1), libsqlite3-0 (>= 3.20.0), libssl3 (>= 3.0.0), libyaml-0-2, libzmq5 (>= 4.2.0)")
set(FARM_DEB_LIBS_agent "libarchive13 (>= 3.5.0), libc6 (>= 2.34), libcurl4 (>= 7.63.0), libjansson4 (>= 2.14), libmicrohttpd12 (>= 0.9.61), libprotobuf-c1 (>= 1.3.1), libssl3 (>= 3.0.0), libzmq5 (>= 4.2.0)")
set(FARM_DEB_LIBS_farmctl "libarchive13 (>= 3.5.0), libc6 (>= 2.34), libcurl4 (>= 7.63.0), libjansson4 (>= 2.14), libprotobuf-c1 (>= 1.0.1), libssl3 (>= 3.0.0), libyaml-0-2, libzmq5 (>= 4.2.0)")

set(CPACK_DEBIAN_COORDINATOR_PACKAGE_NAME farm-coordinator)
# The journal's library (coordinator/journal.c): dpkg-shlibdeps says "libsqlite3-0 (>=
# 3.20.0)" (sqlite3_prepare_v3; in the list above, in its order); the journal needs SQLite
# 3.35 (RETURNING), a feature no symbol shows, so it is named again here.
set(FARM_DEB_JOURNAL_coordinator "libsqlite3-0 (>= 3.35)")
set(CPACK_DEBIAN_COORDINATOR_PACKAGE_DEPENDS
  "${FARM_DEB_LIBS_coordinator}, ${FARM_DEB_JOURNAL_coordinator}, adduser, passwd")
set(CPACK_COMPONENT_COORDINATOR_DESCRIPTION
"farm build farm: the coordinator
farm builds multi-architecture container images on native build nodes. The
coordinator holds the farm: it queues one job per platform, dispatches them to
the agents, and pushes one OCI image index once every platform has built.
Configuration: /etc/farm/farm.yaml; service: farm-coordinator.service.")

set(CPACK_DEBIAN_AGENT_PACKAGE_NAME farm-agent)
set(CPACK_DEBIAN_AGENT_PACKAGE_DEPENDS
    "${FARM_DEB_LIBS_agent}, adduser, passwd, buildah, runc, slirp4netns, uidmap")
# (unshare and nsenter are util-linux's, which is Essential: no dependency needed)
set(CPACK_DEBIAN_AGENT_PACKAGE_RECOMMENDS "qemu-user-static, binfmt-support")
set(CPACK_COMPONENT_AGENT_DESCRIPTION
"farm build farm: the build agent
farm builds multi-architecture container images on native build nodes. The
agent runs on each build host, takes jobs from the coordinator and builds them
with buildah, each RUN step in a rootless sandbox (a user namespace of the
unprivileged farm user and its subordinate ids, network through slirp4netns).
Settings: /etc/default/farm-agent; service: farm-agent.service.")

set(CPACK_DEBIAN_FARMCTL_PACKAGE_NAME farmctl)
set(CPACK_DEBIAN_FARMCTL_PACKAGE_DEPENDS "${FARM_DEB_LIBS_farmctl}")
set(CPACK_DEBIAN_FARMCTL_PACKAGE_SECTION devel)
set(CPACK_COMPONENT_FARMCTL_DESCRIPTION
"farm build farm: the command line client
farm builds multi-architecture container images on native build nodes.
farmctl submits builds (farmctl submit -t REF .), lists nodes and builds,
validates farm.yaml and makes CURVE key pairs (farmctl keygen).")

include(CPack)
