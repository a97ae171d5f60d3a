/*
 * jsonschema: validates a JSON value against the subset of JSON Schema our tool and project
 * schemas use: type (string, integer, number, boolean, array, object, null), enum, properties,
 * required, additionalProperties (false only), items, minItems, maxItems, minLength, maxLength
 * (in UTF-8 characters), pattern (POSIX extended), minimum, maximum. Unknown keywords are
 * ignored. Pure; any thread.
 */
#ifndef MYLOWARE_WORKFLOW_JSONSCHEMA_H
#define MYLOWARE_WORKFLOW_JSONSCHEMA_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Returns true when v is valid; otherwise false and one sentence in err naming the path
 * ("videos[1].visual_prompt: is required"). */
bool jsonschema_validate(const json_t *schema, const json_t *v, char *err, size_t cap);

#endif
