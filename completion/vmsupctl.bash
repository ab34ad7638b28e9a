# bash completion for vmsupctl(1): verbs, VM names (asked of the bus, with the
# --bus given on the line), options, keys and local files.
# shellcheck shell=bash

_vmsupctl() {
        local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
        local verbs="list status start stop shutdown reboot reset pause resume reload sendkey monitor qmp agent events stats metrics read-file write-file console vnc screenshot migrate migrate-in help"
        local i w verb="" nargs=0
        local -a bus=()

        for ((i = 1; i < COMP_CWORD; i++)); do
                w=${COMP_WORDS[i]}
                case $w in
                --bus) bus=(--bus "${COMP_WORDS[i + 1]}"); ((i++)) ;;
                --bus=*) bus=("$w") ;;
                --timeout | --count | --since | --offset | --length | --hold-ms | --listen | --format | --runtime-dir | --max-bandwidth | --downtime-limit) ((i++)) ;;
                -*) ;;
                *) if [[ -z $verb ]]; then verb=$w; else ((nargs++)); fi ;;
                esac
        done

        case $prev in
        --bus)
                COMPREPLY=($(compgen -W "system session" -- "$cur"))
                return
                ;;
        --timeout | --count | --since | --offset | --length | --hold-ms | --listen | --max-bandwidth | --downtime-limit)
                COMPREPLY=()
                return
                ;;
        --format)
                COMPREPLY=($(compgen -W "prometheus openmetrics" -- "$cur"))
                return
                ;;
        --runtime-dir)
                COMPREPLY=($(compgen -d -- "$cur"))
                return
                ;;
        esac

        if [[ $cur == -* ]]; then
                local opts="--bus --direct --no-direct --runtime-dir --json --help --version"
                case $verb in
                list) opts+=" --name" ;;
                start) opts+=" --paused" ;;
                shutdown) opts+=" --timeout --force" ;;
                reboot) opts+=" --timeout" ;;
                sendkey) opts+=" --hold-ms" ;;
                events) opts+=" --since --count --timeout" ;;
                read-file) opts+=" --offset --length" ;;
                write-file) opts+=" --append" ;;
                console) opts+=" --force" ;;
                vnc) opts+=" --listen" ;;
                migrate) opts+=" --max-bandwidth --downtime-limit --auto-converge --local-disk --timeout" ;;
                migrate-in) opts+=" --local-disk --timeout" ;;
                metrics) opts+=" --format" ;;
                esac
                COMPREPLY=($(compgen -W "$opts" -- "$cur"))
                return
        fi
        if [[ -z $verb ]]; then
                COMPREPLY=($(compgen -W "$verbs" -- "$cur"))
                return
        fi
        case $verb in
        list | help) COMPREPLY=(); return ;;
        esac
        if [[ $nargs -eq 0 || $verb == metrics ]]; then
                local names
                names=$("${COMP_WORDS[0]}" "${bus[@]}" list --name 2>/dev/null)
                COMPREPLY=($(compgen -W "$names" -- "$cur"))
                return
        fi
        case $verb in
        sendkey)
                COMPREPLY=($(compgen -W "ctrl ctrl_r alt alt_r shift shift_r meta_l meta_r delete ret esc tab spc
                        backspace insert home end pgup pgdn up down left right sysrq print pause menu
                        f1 f2 f3 f4 f5 f6 f7 f8 f9 f10 f11 f12 ctrl+alt+delete ctrl+alt+f1 ctrl+alt+f2" -- "$cur"))
                ;;
        monitor)
                [[ $nargs -eq 1 ]] && COMPREPLY=($(compgen -W "info help" -- "$cur"))
                ;;
        qmp)
                [[ $nargs -eq 1 ]] && COMPREPLY=($(compgen -W "query-status query-version query-name query-cpus-fast
                        query-block query-blockstats query-commands query-balloon" -- "$cur"))
                ;;
        agent)
                [[ $nargs -eq 1 ]] && COMPREPLY=($(compgen -W "guest-ping guest-info guest-get-osinfo guest-get-time
                        guest-get-host-name guest-network-get-interfaces guest-fsfreeze-status guest-shutdown" -- "$cur"))
                ;;
        stats)
                COMPREPLY=($(compgen -W "state cpu-total vcpu balloon block agent" -- "$cur"))
                ;;
        read-file)
                [[ $nargs -eq 2 ]] && COMPREPLY=($(compgen -f -- "$cur"))
                ;;
        write-file)
                [[ $nargs -eq 1 ]] && COMPREPLY=($(compgen -f -- "$cur"))
                ;;
        screenshot)
                [[ $nargs -eq 1 ]] && COMPREPLY=($(compgen -f -- "$cur"))
                ;;
        migrate)
                # After NAME: "--", then COMMAND and its arguments.
                if [[ $nargs -eq 1 ]]; then
                        COMPREPLY=($(compgen -W "--" -- "$cur"))
                else
                        COMPREPLY=($(compgen -c -- "$cur"))
                fi
                ;;
        esac
}
complete -F _vmsupctl vmsupctl
