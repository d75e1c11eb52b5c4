/* SPDX-License-Identifier: Apache-2.0 */
/* Any protobuf-c message as JSON, by walking its descriptor: what `farmctl ... --format
 * json` prints and what the coordinator's HTTP API serves, so scripts, the web page and
 * farmctl read one schema (proto/farm.proto). Field names as in the .proto; every field
 * is present (proto3 defaults included: a reader never meets a missing key); repeated
 * fields are arrays; enums their value's name; bytes base64; 64-bit integers numbers.
 * It never prints a credential: a field of type RegistryCredential or Secret, and a
 * field whose name says secret or token, is left out whatever message holds it. */
#ifndef FARM_PBJSON_H
#define FARM_PBJSON_H

#include <stdio.h>

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

/* A new JSON object for msg; NULL when out of memory. */
json_t *farm_pbjson(const ProtobufCMessage *msg);

/* msg as JSON text (compact, or indented by 2 when pretty), NUL-terminated, for the caller
 * to free(); NULL when out of memory. */
char *farm_pbjson_dumps(const ProtobufCMessage *msg, int pretty);

/* Writes msg as indented JSON and a newline. 0, or -1 when out of memory or on a write
 * error (errno set by stdio). */
int farm_pbjson_print(FILE *out, const ProtobufCMessage *msg);

#endif
