/* cwsandbox cp: copy a file into or out of a sandbox (or between two). */
#include "cli.h"

static int run_cp(struct cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"quiet", no_argument, NULL, 'q'},
        CLI_OPT_HELP,
        CLI_OPT_END,
    };
    struct cli_opts o = {
        .cli = cli, .argc = argc, .argv = argv, .optstring = "hq", .longopts = longopts};
    struct cli_copy_options co = {.timeout_ms = -1};
    struct cli_endpoint src = {0}, dst = {0};
    struct cws_error err = {0};
    int c, status;
    while ((c = cli_opt_next(&o)) != -1) {
        if (c == CLI_OPT_EXIT)
            return o.status;
        if (c == 'q')
            co.quiet = true;
    }
    if (cli_want_args(cli, &o, 2, 2, "SRC DST"))
        return CLI_EXIT_USAGE;
    if (cli_endpoint_parse(cli, o.args[0], &src) < 0 ||
        cli_endpoint_parse(cli, o.args[1], &dst) < 0) {
        status = CLI_EXIT_USAGE;
    } else if (!src.id && !dst.id) {
        status = cli_usage_error(cli, "one of SRC and DST must be in a sandbox: "
                                      "SANDBOX_ID:/path");
    } else if (src.std && dst.std) {
        status = cli_usage_error(cli, "SRC and DST cannot both be '-'");
    } else {
        int r = cli_connect(cli, false, &err);
        if (r == 0)
            r = cli_copy(cli, &src, &dst, &co, NULL, &err);
        status = cli_fail(cli, r, &err);
    }
    cli_endpoint_clear(&src);
    cli_endpoint_clear(&dst);
    return status;
}

const struct cli_command cli_cmd_cp = {
    .name = "cp",
    .summary = "Copy a file into or out of a sandbox",
    .usage = "cp [-q] SRC DST",
    .help = "SRC and DST are SANDBOX_ID:/absolute/path, a local path, or '-' for stdin (as SRC)\n"
            "or stdout (as DST). A DST that is a local directory, or a sandbox path ending in\n"
            "'/', receives the file under its own name. A local file is replaced only once the\n"
            "download is complete. Large transfers show a progress bar on a terminal.\n"
            "Files up to 1 GiB; directories: use tar through 'exec -i'.\n"
            "\n"
            "Options:\n"
            "  -q, --quiet   no progress bar\n"
            "  -h, --help    show this help\n"
            "\n"
            "Examples:\n"
            "  cwsandbox cp data.csv sbx-1234:/work/\n"
            "  cwsandbox cp sbx-1234:/work/out.json .\n"
            "  echo 'print(1)' | cwsandbox cp - sbx-1234:/work/main.py\n",
    .run = run_cp,
};
