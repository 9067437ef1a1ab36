import GatewayCLI
import Glibc

exit(GatewayCommand.main(Array(CommandLine.arguments.dropFirst())))
