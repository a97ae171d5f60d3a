/* cpuprio: the class a thread runs at, and the threads made for lowered work. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>

#include "core/cpuprio.h"

static _Atomic int seen = -1, seen_child = -1;
static _Atomic long ran_on;

static void *child(void *arg) {
    (void)arg;
    atomic_store(&seen_child, (int)cpuprio_self());
    return NULL;
}

static void work(void *arg) {
    atomic_fetch_add((_Atomic int *)arg, 1);
    atomic_store(&seen, (int)cpuprio_self());
    atomic_store(&ran_on, (long)pthread_self());
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, child, NULL), 0);
    pthread_join(t, NULL);
}

Test(cpuprio, parse_knows_the_three_classes) {
    cr_assert_eq(cpuprio_parse("idle"), CPUPRIO_IDLE);
    cr_assert_eq(cpuprio_parse("low"), CPUPRIO_LOW);
    cr_assert_eq(cpuprio_parse("normal"), CPUPRIO_NORMAL);
    cr_assert_eq(cpuprio_parse("bogus"), CPUPRIO_NORMAL);
    cr_assert_eq(cpuprio_parse(NULL), CPUPRIO_NORMAL);
}

static void runs_lowered(enum cpuprio p) {
    _Atomic int calls = 0;
    cr_assert_eq(cpuprio_self(), CPUPRIO_NORMAL);
    cr_assert_eq(cpuprio_run(p, work, &calls), 0);
    cr_assert_eq(atomic_load(&calls), 1,
                 "the work ran once, and had ended when cpuprio_run returned");
    cr_assert_eq(atomic_load(&seen), (int)p, "the work ran at the class asked");
    cr_assert_eq(atomic_load(&seen_child), (int)p, "threads it created inherited it");
    cr_assert_neq(atomic_load(&ran_on), (long)pthread_self(), "on a thread of its own");
    cr_assert_eq(cpuprio_self(), CPUPRIO_NORMAL, "the caller's priority is untouched");
}

Test(cpuprio, idle_work_runs_at_sched_idle_on_its_own_thread) { runs_lowered(CPUPRIO_IDLE); }
Test(cpuprio, low_work_runs_at_nice_10_on_its_own_thread) { runs_lowered(CPUPRIO_LOW); }

Test(cpuprio, normal_work_runs_on_the_calling_thread) {
    _Atomic int calls = 0;
    cr_assert_eq(cpuprio_run(CPUPRIO_NORMAL, work, &calls), 0);
    cr_assert_eq(atomic_load(&calls), 1);
    cr_assert_eq(atomic_load(&ran_on), (long)pthread_self());
    cr_assert_eq(atomic_load(&seen), CPUPRIO_NORMAL);
}
