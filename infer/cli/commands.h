// The deblur subcommands; each takes main's argc/argv (argv[1] is the command's name) and
// returns the process exit code.
#pragma once

namespace deblur::cli {

int run_demo(int argc, char** argv);
int run_infer(int argc, char** argv);
int run_info(int argc, char** argv);
int run_metrics(int argc, char** argv);
int run_train(int argc, char** argv);
int run_make_dataset(int argc, char** argv);
int run_export(int argc, char** argv);
int run_runs(int argc, char** argv);
int run_serve(int argc, char** argv);

}  // namespace deblur::cli
