/* safety: whole words, suffixes, multi-word entries (api.md §3). */
#include <criterion/criterion.h>
#include <string.h>

#include "workflow/safety.h"

static const char *list = "kill,bomb,terrorist,hate speech,murder,shoot,suicide,racial slur";

static const char *hit(const char *text) {
    static char entry[64];
    return safety_blocked(list, text, entry, sizeof entry) ? entry : NULL;
}

Test(safety, whole_words_pass_when_they_only_contain_an_entry) {
    const char *ok[] = {"a skill to learn",
                        "the photoshoot went well",
                        "bombastic claims",
                        "Skills",
                        "killjoy",
                        "overshoot",
                        "shootout",
                        "hateful speech",
                        "",
                        "nothing here",
                        "bombe glacée"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        cr_assert_null(hit(ok[i]), "'%s' should pass (matched %s)", ok[i], hit(ok[i]));
}

Test(safety, entries_and_their_suffixes_match) {
    struct {
        const char *text, *entry;
    } cases[] = {{"killing time", "kill"},
                 {"two bombs", "bomb"},
                 {"a shooting star", "shoot"},
                 {"KILL", "kill"},
                 {"he was murdered", "murder"},
                 {"bombers", "bomb"},
                 {"shooter", "shoot"},
                 {"kill.", "kill"},
                 {"(bomb)", "bomb"},
                 {"x-kills-y", "kill"},
                 {"bombed", "bomb"},
                 {"punches", NULL}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *h = hit(cases[i].text);
        if (cases[i].entry) {
            cr_assert_not_null(h, "'%s' should match", cases[i].text);
            cr_assert_str_eq(h, cases[i].entry, "'%s'", cases[i].text);
        } else {
            cr_assert_null(h, "'%s' should pass", cases[i].text);
        }
    }
}

Test(safety, multi_word_entries_match_consecutive_words) {
    cr_assert_str_eq(hit("no hate speech please"), "hate speech");
    cr_assert_str_eq(hit("Hate   Speeches"), "hate speech");
    cr_assert_str_eq(hit("a racial slur"), "racial slur");
    cr_assert_null(hit("hate the speech"));
    cr_assert_null(hit("racial slurry"));
    cr_assert_null(hit("speech hate"));
}

Test(safety, first_entry_in_list_order_and_the_reason) {
    char entry[64], reason[80];
    cr_assert(safety_blocked(list, "shoot then kill", entry, sizeof entry));
    cr_assert_str_eq(entry, "kill");
    safety_reason(entry, reason, sizeof reason);
    cr_assert_str_eq(reason, "matched_keyword:kill");
}

Test(safety, entries_are_trimmed_and_empty_ones_skipped) {
    char entry[64];
    cr_assert(
        safety_blocked(" , Forbidden Words ,", "some forbidden words here", entry, sizeof entry));
    cr_assert_str_eq(entry, "forbidden words");
    cr_assert_not(safety_blocked("", "kill", entry, sizeof entry));
    cr_assert_not(safety_blocked(",,", "kill", entry, sizeof entry));
}
