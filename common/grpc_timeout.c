/* grpc-timeout header values, both directions. */
#include "grpc_timeout.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>

#define TIMEOUT_MAX_DIGITS 8
#define TIMEOUT_MAX_VALUE  99999999

/* How much of a rejected value goes into the error message. */
#define QUOTE_MAX 40

struct timeout_unit {
    char symbol;
    int64_t ns;
};

/* Finest first: formatting picks the first unit that fits. */
static const struct timeout_unit timeout_units[] = {
    {'n', 1},
    {'u', 1000},
    {'m', 1000 * 1000},
    {'S', 1000 * 1000 * 1000},
    {'M', INT64_C(60) * 1000 * 1000 * 1000},
    {'H', INT64_C(3600) * 1000 * 1000 * 1000},
};

#define TIMEOUT_UNIT_COUNT (sizeof(timeout_units) / sizeof(timeout_units[0]))

static int64_t div_round_up(int64_t value, int64_t divisor)
{
    return value / divisor + (value % divisor != 0);
}

int cws_grpc_timeout_format(int64_t timeout_ns, char ret_buf[CWS_GRPC_TIMEOUT_BUF_SIZE],
                            struct cws_error *err)
{
    if (timeout_ns <= 0)
        return cws_error_set(err, CWS_E_DEADLINE_EXCEEDED,
                             "the deadline expired before the call started");
    for (size_t i = 0; i < TIMEOUT_UNIT_COUNT; i++) {
        int64_t value = div_round_up(timeout_ns, timeout_units[i].ns);
        if (value <= TIMEOUT_MAX_VALUE) {
            /* 1..99999999 here; uint32_t lets the compiler see it fits the buffer. */
            snprintf(ret_buf, CWS_GRPC_TIMEOUT_BUF_SIZE, "%" PRIu32 "%c", (uint32_t)value,
                     timeout_units[i].symbol);
            return 0;
        }
    }
    /* Unreachable for int64 nanoseconds (at most ~2.6 million hours); kept as the rule. */
    snprintf(ret_buf, CWS_GRPC_TIMEOUT_BUF_SIZE, "%dH", TIMEOUT_MAX_VALUE);
    return 0;
}

static const struct timeout_unit *find_unit(char symbol)
{
    for (size_t i = 0; i < TIMEOUT_UNIT_COUNT; i++) {
        if (timeout_units[i].symbol == symbol)
            return &timeout_units[i];
    }
    return NULL;
}

static bool is_ascii_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Copy a peer-supplied value for an error message: bounded, control bytes made visible. */
static void quote_value(char *dst, size_t size, const char *src)
{
    size_t n = 0;
    for (; src[n] != '\0' && n + 1 < size; n++) {
        unsigned char c = (unsigned char)src[n];
        dst[n] = (c < 0x20 || c >= 0x7f) ? '?' : (char)c;
    }
    dst[n] = '\0';
}

static int invalid_timeout(const char *value, struct cws_error *err)
{
    char quoted[QUOTE_MAX + 1];
    quote_value(quoted, sizeof(quoted), value);
    return cws_error_set(err, CWS_E_INVALID_ARGUMENT,
                         "invalid grpc-timeout \"%s\": expected 1 to 8 digits and a unit "
                         "(H, M, S, m, u or n)",
                         quoted);
}

int cws_grpc_timeout_parse(const char *value, int64_t *ret_ns, struct cws_error *err)
{
    if (!value)
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "missing grpc-timeout value");

    int64_t amount = 0;
    size_t digits = 0;
    while (is_ascii_digit(value[digits])) {
        if (digits == TIMEOUT_MAX_DIGITS)
            return invalid_timeout(value, err);
        amount = amount * 10 + (value[digits] - '0');
        digits++;
    }
    if (digits == 0 || value[digits] == '\0' || value[digits + 1] != '\0')
        return invalid_timeout(value, err);
    const struct timeout_unit *unit = find_unit(value[digits]);
    if (!unit)
        return invalid_timeout(value, err);

    *ret_ns = amount > INT64_MAX / unit->ns ? INT64_MAX : amount * unit->ns;
    return 0;
}
