/*
 * test_error.c - error codes, texts, version, clock.
 */
#include "testutil.h"

#include <stdio.h>

static const int codes[] = {
    CF_EINVAL,   CF_ENOMEM,   CF_EAGAIN,  CF_EBUSY,    CF_ECANCELED, CF_ETIMEDOUT, CF_EDEADLK,
    CF_EPERM,    CF_EALREADY, CF_ESHUTDOWN, CF_ENOTSUP, CF_EPENDING, CF_EBROKEN,  CF_EFAIL,
    CF_ELOOPBUSY, CF_EOF,     CF_EWORKER,
};
#define NCODES (sizeof(codes) / sizeof(codes[0]))

static void test_every_code_has_distinct_text(void **state)
{
    (void)state;
    for (size_t i = 0; i < NCODES; i++) {
        const char *t = cf_strerror(codes[i]);
        const char *n = cf_err_name(codes[i]);
        assert_true(codes[i] < 0);
        assert_non_null(t);
        assert_true(strlen(t) > 0);
        assert_string_not_equal(t, "unknown error");
        assert_true(strncmp(n, "CF_E", 4) == 0);
        for (size_t j = 0; j < i; j++) {
            assert_int_not_equal(codes[i], codes[j]);
            assert_string_not_equal(t, cf_strerror(codes[j]));
            assert_string_not_equal(n, cf_err_name(codes[j]));
        }
    }
    assert_string_equal(cf_err_name(CF_ETIMEDOUT), "CF_ETIMEDOUT");
    assert_string_equal(cf_strerror(0), "success");
}

static void test_errno_codes_pass_through(void **state)
{
    (void)state;
    assert_int_equal(CF_EINVAL, -EINVAL);
    assert_int_equal(CF_ETIMEDOUT, -ETIMEDOUT);
    /* An errno value cfutures has no name for still gets the system's text. */
    assert_string_equal(cf_strerror(-EPIPE), "Broken pipe");
    assert_string_equal(cf_err_name(-EPIPE), "EPIPE");
}

static void test_unknown_codes(void **state)
{
    (void)state;
    assert_string_equal(cf_strerror(-4999), "unknown error");
    assert_string_equal(cf_strerror(12345), "unknown error");
    assert_string_equal(cf_err_name(-4999), "CF_EUNKNOWN");
}

static void test_version_and_clock(void **state)
{
    char want[32];
    uint64_t a, b;

    (void)state;
    snprintf(want, sizeof(want), "%d.%d.%d", CF_VERSION_MAJOR, CF_VERSION_MINOR, CF_VERSION_PATCH);
    assert_string_equal(cf_version(), want);
    a = cf_now_ns();
    b = cf_now_ns();
    assert_true(b >= a);
    assert_true(cf_cpu_count() >= 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_code_has_distinct_text),
        cmocka_unit_test(test_errno_codes_pass_through),
        cmocka_unit_test(test_unknown_codes),
        cmocka_unit_test(test_version_and_clock),
    };
    return cmocka_run_group_tests_name("error", tests, NULL, NULL);
}
