/* embed: files compiled into the binary (schema.sql, schema_pg.sql, openapi.json), NUL-terminated.
 */
#ifndef MYLOWARE_CORE_EMBED_H
#define MYLOWARE_CORE_EMBED_H

#include <stddef.h>

extern const char embed_schema_sql[];
extern const char embed_openapi_json[];
extern const char embed_schema_pg_sql[]; /* the Postgres schema (schema_pg.sql) */
size_t embed_schema_sql_len(void);
size_t embed_openapi_json_len(void);

#endif
