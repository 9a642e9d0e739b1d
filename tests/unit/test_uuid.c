/* Unit tests of src/core/uuid.c: UUID4 formatting and generation, and the check
 * of client-sent correlation ids. */
#include "unit.h"

#include <stdlib.h>

#include "core/uuid.h"

#define N_GENERATED 10000

/* Fails unless s is a lowercase canonical UUID4 with the RFC 4122 variant. */
static void assert_uuid4(const char *s)
{
    assert_int_equal(strlen(s), UUID_STR_LEN);
    for (size_t i = 0; i < UUID_STR_LEN; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        bool lower_hex = (s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f');
        if (dash ? s[i] != '-' : !lower_hex)
            fail_msg("bad character at %zu in %s", i, s);
    }
    if (s[14] != '4')
        fail_msg("version nibble of %s is not 4", s);
    if (strchr("89ab", s[19]) == NULL)
        fail_msg("variant of %s is not 10xx", s);
    assert_true(uuid_is_valid(s, UUID_STR_LEN));
}

static void test_format_known_bytes(void **state)
{
    (void)state;
    static const struct {
        uint8_t fill;
        const char *want;
    } cases[] = {
        { 0x00, "00000000-0000-4000-8000-000000000000" },
        { 0xff, "ffffffff-ffff-4fff-bfff-ffffffffffff" },
        { 0x5a, "5a5a5a5a-5a5a-4a5a-9a5a-5a5a5a5a5a5a" },
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        uint8_t bytes[16];
        char out[UUID_STR_LEN + 1];
        memset(bytes, cases[i].fill, sizeof bytes);
        uuid4_format(bytes, out);
        assert_string_equal(out, cases[i].want);
        assert_uuid4(out);
    }
}

static void test_format_byte_order(void **state)
{
    (void)state;
    uint8_t bytes[16];
    for (int i = 0; i < 16; i++)
        bytes[i] = (uint8_t)i;
    char out[UUID_STR_LEN + 1];
    uuid4_format(bytes, out);
    assert_string_equal(out, "00010203-0405-4607-8809-0a0b0c0d0e0f");
    assert_int_equal(bytes[6], 6); /* the input is not modified */
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void test_generate_many(void **state)
{
    (void)state;
    char(*ids)[UUID_STR_LEN + 1] = malloc(N_GENERATED * sizeof *ids);
    assert_non_null(ids);
    unsigned seen_variant[4] = { 0 };
    for (int i = 0; i < N_GENERATED; i++) {
        assert_int_equal(uuid4_generate(ids[i]), 0);
        assert_uuid4(ids[i]);
        seen_variant[strchr("89ab", ids[i][19]) - "89ab"]++;
    }
    /* All four variant digits occur: the low two bits stay random. */
    for (int v = 0; v < 4; v++)
        assert_true(seen_variant[v] > N_GENERATED / 8);
    qsort(ids, N_GENERATED, sizeof *ids, cmp_str);
    for (int i = 1; i < N_GENERATED; i++)
        if (strcmp(ids[i - 1], ids[i]) == 0)
            fail_msg("duplicate id %s", ids[i]);
    free(ids);
}

static void test_is_valid(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        bool want;
    } cases[] = {
        { "3f0c9a52-1b7e-4c1d-9e2f-0123456789ab", true },
        { "3F0C9A52-1B7E-4C1D-9E2F-0123456789AB", true },
        { "3f0C9a52-1B7e-4c1D-9E2f-0123456789Ab", true },
        { "00000000-0000-0000-0000-000000000000", true }, /* any version */
        { "3f0c9a52-1b7e-1c1d-0e2f-0123456789ab", true },
        { "", false },
        { "3f0c9a52-1b7e-4c1d-9e2f-0123456789a", false },   /* 35 chars */
        { "3f0c9a52-1b7e-4c1d-9e2f-0123456789abc", false }, /* 37 chars */
        { "3f0c9a521b7e4c1d9e2f0123456789ab", false },      /* no dashes */
        { "{3f0c9a52-1b7e-4c1d-9e2f-0123456789a}", false },
        { "3f0c9a5-21b7e-4c1d-9e2f-0123456789ab", false },
        { "3f0c9a52-1b7e4-c1d-9e2f-0123456789ab", false },
        { "3f0c9a52-1b7e-4c1d9-e2f-0123456789ab", false },
        { "3f0c9a52-1b7e-4c1d-9e2f0-123456789ab", false },
        { "3f0c9a52-1b7e-4c1d-9e2f-01234567-9ab", false },
        { "3f0c9a52_1b7e_4c1d_9e2f_0123456789ab", false },
        { "3g0c9a52-1b7e-4c1d-9e2f-0123456789ab", false },
        { "3f0c9a52-1b7e-4c1d-9e2f-0123456789aZ", false },
        { "3f0c9a52-1b7e-4c1d-9e2f-01234567 9ab", false },
        { "3f0c9a52-1b7e-4c1d-9e2f-0123456789a\n", false },
        { "------------------------------------", false },
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++)
        if (uuid_is_valid(cases[i].s, strlen(cases[i].s)) != cases[i].want)
            fail_msg("uuid_is_valid(\"%s\") should be %d", cases[i].s, cases[i].want);
}

static void test_is_valid_uses_length_not_nul(void **state)
{
    (void)state;
    const char *s = "3f0c9a52-1b7e-4c1d-9e2f-0123456789abEXTRA";
    assert_true(uuid_is_valid(s, UUID_STR_LEN));
    assert_false(uuid_is_valid(s, strlen(s)));
    assert_false(uuid_is_valid("3f0c9a52-1b7e-4c1d-9e2f-01234\0"
                               "6789ab",
                               UUID_STR_LEN));
    assert_false(uuid_is_valid(NULL, UUID_STR_LEN));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_known_bytes),
        cmocka_unit_test(test_format_byte_order),
        cmocka_unit_test(test_generate_many),
        cmocka_unit_test(test_is_valid),
        cmocka_unit_test(test_is_valid_uses_length_not_nul),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
