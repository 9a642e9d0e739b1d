/* Unit tests of src/core/list.h: insert at either end, remove from anywhere (twice
 * too), walk in order, and find the element from its node. */
#include "unit.h"

#include "core/list.h"

struct item {
    int value;
    struct list link;
};

/* The values of head's elements in order, as a string of digits. */
static void walk(struct list *head, char *out)
{
    struct list *n;
    list_foreach(n, head)
    {
        *out++ = (char)('0' + list_entry(n, struct item, link)->value);
    }
    *out = '\0';
}

static void test_insert_remove_walk(void **state)
{
    (void)state;
    struct list head;
    struct item it[5];
    char seen[8];
    list_init(&head);
    assert_true(list_empty(&head));
    walk(&head, seen);
    assert_string_equal(seen, "");
    for (int i = 0; i < 5; i++) {
        it[i].value = i;
        if (i % 2 == 0)
            list_insert_tail(&head, &it[i].link);
        else
            list_insert_head(&head, &it[i].link);
    }
    walk(&head, seen);
    assert_string_equal(seen, "31024");
    list_remove(&it[0].link); /* the middle */
    list_remove(&it[3].link); /* the first */
    list_remove(&it[4].link); /* the last */
    walk(&head, seen);
    assert_string_equal(seen, "12");
    list_remove(&it[0].link); /* removed twice: harmless, the list is unchanged */
    walk(&head, seen);
    assert_string_equal(seen, "12");
    assert_ptr_equal(list_entry(head.next, struct item, link), &it[1]);
    list_remove(&it[1].link);
    list_remove(&it[2].link);
    assert_true(list_empty(&head));
    assert_ptr_equal(head.next, &head);
    assert_ptr_equal(head.prev, &head);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_insert_remove_walk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
