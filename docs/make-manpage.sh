#!/usr/bin/env bash
# Writes densenet's man page (roff) from the program's own --help texts, so that the two cannot
# disagree: the top-level help gives the list of commands, each command's help its options. Only the
# frame (synopsis, examples, environment) is written here. Run at build time by CMakeLists.txt:
#
#   bash docs/make-manpage.sh PROGRAM VERSION DOCDIR OUT    # DOCDIR: where README.md is installed
#
# Needs nothing but bash; help2man would read only the top-level --help.
set -euo pipefail
[ $# -eq 4 ] || { echo "usage: make-manpage.sh PROGRAM VERSION DOCDIR OUT" >&2; exit 2; }
prog=$1 version=$2 docdir=$3 out=$4

bs="\\"
pad=$(printf '%30s' '')   # CLI11 pads an entry's name to 30 columns, indent included

# roff text: a backslash is written \e, and a line must not start with a control character.
text() {
  local s=${1//"$bs"/"${bs}e"}
  [[ $s == [.\']* ]] && s="$bs&$s"
  printf '%s\n' "$s"
}
# A command line or option name: its hyphens are minus signs, so that it can be copied and pasted.
literal() {
  local s=${1//"$bs"/"${bs}e"}
  printf '%s' "${s//-/"$bs-"}"
}

# The entries of one section of a --help text ("Options:", "Positionals:", "Subcommands:") as .TP
# paragraphs: the name in bold, its type and default in roman, then the description. A name longer
# than CLI11's column has its description on the next line, indented to the column.
entries() {  # $1: the section's heading; stdin: the --help text
  local heading=$1 inside=0 line next name rest desc i
  local -a lines
  mapfile -t lines
  for ((i = 0; i < ${#lines[@]}; ++i)); do
    line=${lines[i]}
    if [[ $line == "$heading" ]]; then inside=1; continue; fi
    [[ $inside -eq 1 ]] || continue
    [[ -n $line ]] || break   # a blank line ends the section
    next=${lines[i + 1]:-}
    if [[ $next == "$pad"[^\ ]* ]]; then
      name=${line:2} desc=${next:30}
      i=$((i + 1))
    else
      name=${line:2:28} desc=${line:30}
    fi
    name=${name%"${name##*[^ ]}"}   # trailing padding
    [[ $name == "-h,--help" ]] && continue   # every command has it; said once, under OPTIONS
    rest=""
    [[ $name == *" "* ]] && rest=" ${name#* }" name=${name%% *}
    echo ".TP"
    printf '%sfB%s%sfR%s\n' "$bs" "$(literal "$name")" "$bs" "$(literal "$rest")"
    text "$desc"
  done
}

help_of() { "$prog" "$@" --help; }
top=$(help_of)
summary=$(head -n1 <<<"$top")
mapfile -t commands < <(entries "Subcommands:" <<<"$top" | sed -n 's/^\\fB\(.*\)\\fR$/\1/p')
[ ${#commands[@]} -gt 0 ] || { echo "error: no commands found in '$prog --help'" >&2; exit 1; }

tmp=$out.partial
{
  printf '.TH DENSENET 1 "" "densenet %s" "User Commands"\n' "$version"
  echo ".nh"   # no hyphenation: option names and paths stay whole
  echo ".SH NAME"
  printf 'densenet %s- %s\n' "$bs" "$(text "${summary#*: }")"
  echo ".SH SYNOPSIS"
  printf '.B densenet\n.I COMMAND\n.RI [ OPTIONS ]\n.br\n.B densenet\n.BR %s-%s-help " | " %s-%s-version\n' \
    "$bs" "$bs" "$bs" "$bs"
  echo ".SH DESCRIPTION"
  text "$summary"
  echo ".PP"
  echo "One program with one command per job. Every command takes $bs-$bs-help."
  echo "Bad input gets one line starting with error: and a non-zero exit status."
  echo ".SH OPTIONS"
  printf '.TP\n%sfB%s%sfR\nprint the commands (or, after one, its options) and exit\n' "$bs" "$(literal -h,--help)" "$bs"
  printf '.TP\n%sfB%s%sfR\n' "$bs" "$(literal --version)" "$bs"
  echo "print the version, the oneDNN library it runs on and the instruction set of its kernels on this CPU,"
  echo "how the program was built (MPI, CUDA) and exit"
  echo ".SH COMMANDS"
  entries "Subcommands:" <<<"$top"
  for command in "${commands[@]}"; do
    help=$(help_of "$command")
    printf '.SS "densenet %s"\n' "$command"
    text "$(head -n1 <<<"$help")"
    usage=$(sed -n 's/^Usage: [^ ]* //p' <<<"$help")
    printf '.PP\n.B densenet\n%s\n' "$(literal "$usage")"
    entries "Positionals:" <<<"$help"
    entries "Options:" <<<"$help"
  done
  cat <<EOF
.SH EXAMPLES
Train torchvision's densenet121 on CIFAR\\-10 as the lecture does (it fetches the data set first):
.PP
.RS
.nf
densenet train \\-\\-download \\-\\-out runs/lecture
.fi
.RE
.PP
A short run on Fashion\\-MNIST at 32x32 (Debian's dataset\\-fashion\\-mnist package), then test it:
.PP
.RS
.nf
densenet train \\-\\-dataset fashion\\-mnist \\-\\-input\\-size 32 \\-\\-epochs 1 \\-\\-out runs/fmnist
densenet eval \\-\\-checkpoint runs/fmnist/best.safetensors \\-\\-dataset fashion\\-mnist
.fi
.RE
.PP
Print a model as PyTorch prints it, and its cost:
.PP
.RS
.nf
densenet summary \\-\\-arch densenet121
densenet complexity \\-\\-arch densenet121 \\-\\-batch\\-size 32
.fi
.RE
.SH ENVIRONMENT
.TP
.B DNNL_MAX_CPU_ISA
the most capable instruction set oneDNN's kernels may use (e.g. AVX2), as oneDNN documents it
.TP
.B DNNL_VERBOSE
1 makes oneDNN print every primitive it creates and runs, with its implementation
.SH SEE ALSO
.BR mpirun (1),
and README.md in $(literal "$docdir"): the lecture reproduced, every command's outputs, and how
the results are tested against PyTorch.
EOF
} >"$tmp"
mv "$tmp" "$out"
