/* tp_strerror covers every tp_err value with a distinct description. */
#include "check.h"
#include "telepack/error.h"

int main(void)
{
    CHECK_STR(tp_strerror(TP_OK), "success");
    CHECK_STR(tp_strerror(TP_ERR__COUNT), "unknown error");
    CHECK_STR(tp_strerror((tp_err)-1), "unknown error");
    for (int i = 0; i < TP_ERR__COUNT; i++) {
        CHECK(strcmp(tp_strerror((tp_err)i), "unknown error") != 0);
        for (int j = 0; j < i; j++)
            CHECK(strcmp(tp_strerror((tp_err)i), tp_strerror((tp_err)j)) != 0);
    }
    return check_exit();
}
