/*
 * safety: the blocklist filter (api.md §3), a pure module. An entry of SAFETY_BLOCKLIST is one
 * or more words; text matches it when consecutive words of the text equal the entry's words,
 * case-insensitively, each word also matching with one of the suffixes s, es, ed, ing, er, ers
 * ("killing", "bombs", "shooting" match "kill", "bomb", "shoot"; "skill", "photoshoot",
 * "bombastic" do not). Words are runs of ASCII letters and digits and of any non-ASCII byte;
 * everything else separates them. Non-goal: the moderation API (providers.h does the call).
 * Any thread; no allocation beyond the caller's buffers.
 */
#ifndef MYLOWARE_WORKFLOW_SAFETY_H
#define MYLOWARE_WORKFLOW_SAFETY_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Checks text against the comma-separated blocklist (entries trimmed; empty entries skipped).
 * Returns true on the first entry (in list order) that matches, and writes it, trimmed and
 * lowercased with single spaces, into entry (cap bytes) when entry is not NULL.
 */
bool safety_blocked(const char *blocklist, const char *text, char *entry, size_t cap);

/* Formats the API reason for a hit: "matched_keyword:<entry>". */
void safety_reason(const char *entry, char *out, size_t cap);

#endif
