/* embed: .incbin pulls the files in at build time (the Makefile makes this object depend on
 * them), so the binary serves exactly what the repository holds. */
#include "core/embed.h"

#include <string.h>

#define EMBED(sym, file)                                                                           \
    __asm__(".section .rodata\n"                                                                   \
            ".global " #sym "\n"                                                                   \
            ".type " #sym ", @object\n"                                                            \
            ".balign 16\n" #sym ":\n"                                                              \
            ".incbin \"" MYLOWARE_SRCDIR "/" file "\"\n"                                           \
            ".byte 0\n"                                                                            \
            ".previous\n")

EMBED(embed_schema_sql, "schema.sql");
EMBED(embed_openapi_json, "openapi.json");
EMBED(embed_schema_pg_sql, "schema_pg.sql");

size_t embed_schema_sql_len(void) { return strlen(embed_schema_sql); }
size_t embed_openapi_json_len(void) { return strlen(embed_openapi_json); }
